//! Classification: what kind of error an event is ([`Class`]) and how urgent ([`Severity`]).
//!
//! In the spirit of the Node *qerrors* library's error types and severities, driven by three
//! static tables (the user-facing version is `docs/classification.md`):
//!
//! 1. **By name** ([`NAME_EXACT`], then [`NAME_PATTERNS`]). The name is reduced to its last
//!    segment (`java.lang.NullPointerException` → `NullPointerException`,
//!    `ActiveRecord::RecordNotFound` → `RecordNotFound`); a Node-style `Error [ERR_X]` also tries
//!    `ERR_X`. Comparison is ASCII case-insensitive. An exact name wins; otherwise the first
//!    prefix/suffix pattern in table order. Generic names (`Error`, `Exception`, `RuntimeError`,
//!    `OSError`, `IOException`, …) are deliberately absent, so the message decides for them.
//! 2. **By message** ([`MESSAGE_RULES`]), only when the name gave nothing: ASCII case-insensitive
//!    phrases matched at the start of a word (`timed out` matches `Request timed out`, and
//!    `oom` does not match `room`), some only as a whole word (`429`, `dns`). The first
//!    rule in table order that occurs anywhere wins. Only the first [`MESSAGE_SCAN_BYTES`] bytes
//!    are looked at, and quoted values (`'…'`, `"…"`, `` `…` ``, the same rule as the fingerprint
//!    uses) are skipped: `Cannot read properties of undefined (reading 'timeout')` is not a
//!    timeout. So the class depends only on what the fingerprint keeps of the message.
//! 3. Nothing matched: [`Class::Unknown`].
//!
//! [`Severity`] then follows from the event's level and the class ([`severity`]).
//!
//! Matching costs no allocation: the exact-name table is indexed by length and the message
//! rules by their first two letters (with a four-byte pre-check), both at compile time, so a
//! word of the message is compared with a handful of rules at most. Classification is a pure
//! function of level, name and message.
#![forbid(unsafe_code)]

use crate::event::fingerprint::{closing_quote, quote_kind};
use crate::event::level::Level;

/// What kind of failure an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Bad input: a request, argument or document that does not meet its rules.
    Validation,
    /// Who the caller is could not be established (missing/expired/invalid credentials; HTTP 401).
    Authentication,
    /// The caller is known but not allowed (HTTP 403, permission denied).
    Authorization,
    /// A requested record, resource or route does not exist (HTTP 404).
    NotFound,
    /// A rate limit or quota was hit (HTTP 429, throttling).
    RateLimit,
    /// Connection-level failure: refused, reset, DNS, TLS, unreachable.
    Network,
    /// An operation ran out of time.
    Timeout,
    /// The database or data store failed or rejected a query (constraints, deadlocks, drivers).
    Database,
    /// File-system operation failed (missing file, permissions on a path, disk full).
    Filesystem,
    /// Memory exhausted.
    Memory,
    /// The application or its environment is misconfigured.
    Configuration,
    /// A module/package/class/native library is missing or incompatible, or an upstream service
    /// the application depends on is unavailable (HTTP 502/503, open circuit breaker).
    Dependency,
    /// A bug in the code: type errors, null dereferences, failed assertions, out-of-bounds.
    Programming,
    /// The process or OS: signals, crashes, resource limits (open files, processes).
    System,
    /// None of the rules matched.
    Unknown,
}

impl Class {
    /// Every class, in declaration order.
    pub const ALL: [Class; 15] = [
        Class::Validation,
        Class::Authentication,
        Class::Authorization,
        Class::NotFound,
        Class::RateLimit,
        Class::Network,
        Class::Timeout,
        Class::Database,
        Class::Filesystem,
        Class::Memory,
        Class::Configuration,
        Class::Dependency,
        Class::Programming,
        Class::System,
        Class::Unknown,
    ];

    /// The snake_case name written in the enriched record.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Validation => "validation",
            Class::Authentication => "authentication",
            Class::Authorization => "authorization",
            Class::NotFound => "not_found",
            Class::RateLimit => "rate_limit",
            Class::Network => "network",
            Class::Timeout => "timeout",
            Class::Database => "database",
            Class::Filesystem => "filesystem",
            Class::Memory => "memory",
            Class::Configuration => "configuration",
            Class::Dependency => "dependency",
            Class::Programming => "programming",
            Class::System => "system",
            Class::Unknown => "unknown",
        }
    }

    /// Severity of this class at `error` level: the base of [`severity`].
    fn error_severity(self) -> Severity {
        match self {
            Class::Memory => Severity::Critical,
            Class::Programming
            | Class::Database
            | Class::System
            | Class::Configuration
            | Class::Dependency => Severity::High,
            Class::Validation
            | Class::Authentication
            | Class::Authorization
            | Class::NotFound
            | Class::RateLimit
            | Class::Network
            | Class::Timeout
            | Class::Filesystem
            | Class::Unknown => Severity::Medium,
        }
    }
}

/// How urgent an event is, least urgent first (`Ord` compares urgency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Expected or harmless; look at it when convenient.
    Low,
    /// Degraded behaviour for some requests.
    Medium,
    /// A real failure that needs fixing soon.
    High,
    /// The service is down or about to be; act now.
    Critical,
}

impl Severity {
    /// Every severity, least urgent first.
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name written in the enriched record.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn step_down(self) -> Severity {
        match self {
            Severity::Critical => Severity::High,
            Severity::High => Severity::Medium,
            Severity::Medium | Severity::Low => Severity::Low,
        }
    }
}

/// Classifies an event: class from its name, else its message; severity from level and class.
pub fn classify(level: Level, name: Option<&str>, message: &str) -> (Class, Severity) {
    let class = name
        .and_then(class_by_name)
        .or_else(|| class_by_message(message))
        .unwrap_or(Class::Unknown);
    (class, severity(level, class))
}

/// Severity table:
///
/// | level | severity |
/// | --- | --- |
/// | `fatal` | `critical`, whatever the class |
/// | `error` | `critical` for memory; `high` for programming, database, system, configuration, dependency; `medium` for all others (incl. unknown) |
/// | `warn` | one step below the `error` severity, at most `medium` |
/// | `info`, `debug`, `trace` | `low` |
pub fn severity(level: Level, class: Class) -> Severity {
    match level {
        Level::Fatal => Severity::Critical,
        Level::Error => class.error_severity(),
        Level::Warn => class.error_severity().step_down().min(Severity::Medium),
        Level::Info | Level::Debug | Level::Trace => Severity::Low,
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// How a [`NAME_PATTERNS`] entry matches the (last segment of the) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    /// The name starts with the pattern.
    Prefix,
    /// The name ends with the pattern.
    Suffix,
}

/// Error names mapped to a class, compared whole and ASCII case-insensitively. Names are unique
/// (a test checks), so order does not matter here.
pub const NAME_EXACT: &[(&str, Class)] = &[
    // Validation
    ("ValidationError", Class::Validation),
    ("ValidationException", Class::Validation),
    ("ValueError", Class::Validation),
    ("ValidatorError", Class::Validation),
    ("ZodError", Class::Validation),
    ("CastError", Class::Validation),
    ("SequelizeValidationError", Class::Validation),
    ("PrismaClientValidationError", Class::Validation),
    ("IllegalArgumentException", Class::Validation),
    ("NumberFormatException", Class::Validation),
    ("MethodArgumentNotValidException", Class::Validation),
    ("HttpMessageNotReadableException", Class::Validation),
    ("MissingServletRequestParameterException", Class::Validation),
    ("InvalidArgumentError", Class::Validation),
    ("InvalidArgumentException", Class::Validation),
    ("ArgumentException", Class::Validation),
    ("ArgumentNullException", Class::Validation),
    ("ArgumentOutOfRangeException", Class::Validation),
    ("FormatException", Class::Validation),
    ("ArgumentError", Class::Validation),
    ("BadRequest", Class::Validation),
    ("BadRequestError", Class::Validation),
    ("BadRequestException", Class::Validation),
    ("UnprocessableEntityError", Class::Validation),
    ("JSONDecodeError", Class::Validation),
    ("UnicodeDecodeError", Class::Validation),
    ("InvalidInputError", Class::Validation),
    // Authentication
    ("AuthenticationError", Class::Authentication),
    ("AuthenticationException", Class::Authentication),
    ("AuthenticationFailed", Class::Authentication),
    ("NotAuthenticated", Class::Authentication),
    ("Unauthorized", Class::Authentication),
    ("UnauthorizedError", Class::Authentication),
    ("UnauthorizedException", Class::Authentication),
    ("NotAuthorizedException", Class::Authentication),
    ("JsonWebTokenError", Class::Authentication),
    ("TokenExpiredError", Class::Authentication),
    ("NotBeforeError", Class::Authentication),
    ("InvalidTokenError", Class::Authentication),
    ("ExpiredSignatureError", Class::Authentication),
    ("InvalidSignatureError", Class::Authentication),
    ("ExpiredJwtException", Class::Authentication),
    ("BadCredentialsException", Class::Authentication),
    ("CredentialsExpiredException", Class::Authentication),
    ("InsufficientAuthenticationException", Class::Authentication),
    ("UsernameNotFoundException", Class::Authentication),
    ("InvalidCredentialsError", Class::Authentication),
    // Authorization
    ("AuthorizationError", Class::Authorization),
    ("AuthorizationException", Class::Authorization),
    ("Forbidden", Class::Authorization),
    ("ForbiddenError", Class::Authorization),
    ("ForbiddenException", Class::Authorization),
    ("PermissionDenied", Class::Authorization),
    ("PermissionDeniedError", Class::Authorization),
    ("AccessDenied", Class::Authorization),
    ("AccessDeniedError", Class::Authorization),
    ("AccessDeniedException", Class::Authorization),
    ("UnauthorizedAccessException", Class::Authorization),
    ("SecurityException", Class::Authorization),
    ("InsufficientScopeError", Class::Authorization),
    // NotFound
    ("NotFound", Class::NotFound),
    ("NotFoundError", Class::NotFound),
    ("NotFoundException", Class::NotFound),
    ("Http404", Class::NotFound),
    ("DoesNotExist", Class::NotFound),
    ("ObjectDoesNotExist", Class::NotFound),
    ("NoResultFound", Class::NotFound),
    ("NoResultException", Class::NotFound),
    ("RecordNotFound", Class::NotFound),
    ("EntityNotFoundException", Class::NotFound),
    ("EmptyResultDataAccessException", Class::NotFound),
    ("ModelNotFoundException", Class::NotFound),
    ("ResourceNotFound", Class::NotFound),
    ("ResourceNotFoundException", Class::NotFound),
    ("NoSuchKey", Class::NotFound),
    ("NoSuchBucket", Class::NotFound),
    ("NoSuchEntityException", Class::NotFound),
    // RateLimit
    ("RateLimitError", Class::RateLimit),
    ("RateLimitExceeded", Class::RateLimit),
    ("RateLimitExceededError", Class::RateLimit),
    ("TooManyRequests", Class::RateLimit),
    ("TooManyRequestsError", Class::RateLimit),
    ("TooManyRequestsException", Class::RateLimit),
    ("Throttled", Class::RateLimit),
    ("ThrottledError", Class::RateLimit),
    ("ThrottlingError", Class::RateLimit),
    ("ThrottlingException", Class::RateLimit),
    ("ProvisionedThroughputExceededException", Class::RateLimit),
    ("RequestLimitExceeded", Class::RateLimit),
    ("LimitExceededException", Class::RateLimit),
    ("SlowDown", Class::RateLimit),
    // Network
    ("ECONNREFUSED", Class::Network),
    ("ECONNRESET", Class::Network),
    ("ECONNABORTED", Class::Network),
    ("EPIPE", Class::Network),
    ("ENOTFOUND", Class::Network),
    ("EAI_AGAIN", Class::Network),
    ("EHOSTUNREACH", Class::Network),
    ("EHOSTDOWN", Class::Network),
    ("ENETUNREACH", Class::Network),
    ("ENETDOWN", Class::Network),
    ("EADDRNOTAVAIL", Class::Network),
    ("EPROTO", Class::Network),
    ("CERT_HAS_EXPIRED", Class::Network),
    ("UNABLE_TO_VERIFY_LEAF_SIGNATURE", Class::Network),
    ("DEPTH_ZERO_SELF_SIGNED_CERT", Class::Network),
    ("SELF_SIGNED_CERT_IN_CHAIN", Class::Network),
    ("ConnectionError", Class::Network),
    ("ConnectionRefusedError", Class::Network),
    ("ConnectionResetError", Class::Network),
    ("ConnectionAbortedError", Class::Network),
    ("BrokenPipeError", Class::Network),
    ("RemoteDisconnected", Class::Network),
    ("MaxRetryError", Class::Network),
    ("NewConnectionError", Class::Network),
    ("ProtocolError", Class::Network),
    ("SSLError", Class::Network),
    ("SSLException", Class::Network),
    ("SSLHandshakeException", Class::Network),
    ("ConnectException", Class::Network),
    ("UnknownHostException", Class::Network),
    ("NoRouteToHostException", Class::Network),
    ("SocketException", Class::Network),
    ("gaierror", Class::Network),
    ("herror", Class::Network),
    ("FetchError", Class::Network),
    ("NetworkError", Class::Network),
    ("ClientConnectorError", Class::Network),
    ("ServerDisconnectedError", Class::Network),
    ("HttpRequestException", Class::Network),
    ("WebException", Class::Network),
    // Timeout
    ("ETIMEDOUT", Class::Timeout),
    ("ESOCKETTIMEDOUT", Class::Timeout),
    ("TimeoutError", Class::Timeout),
    ("TimeoutException", Class::Timeout),
    ("Timeout", Class::Timeout),
    ("TimeoutExpired", Class::Timeout),
    ("SocketTimeoutException", Class::Timeout),
    ("SQLTimeoutException", Class::Timeout),
    ("QueryTimeoutException", Class::Timeout),
    ("DeadlineExceeded", Class::Timeout),
    ("DeadlineExceededError", Class::Timeout),
    ("RequestTimeout", Class::Timeout),
    ("GatewayTimeout", Class::Timeout),
    // Database
    ("QueryFailedError", Class::Database),
    ("IntegrityError", Class::Database),
    ("OperationalError", Class::Database),
    ("ProgrammingError", Class::Database),
    ("DatabaseError", Class::Database),
    ("DataError", Class::Database),
    ("InterfaceError", Class::Database),
    ("UniqueViolation", Class::Database),
    ("ForeignKeyViolation", Class::Database),
    ("NotNullViolation", Class::Database),
    ("CheckViolation", Class::Database),
    ("DeadlockDetected", Class::Database),
    ("SerializationFailure", Class::Database),
    ("LockNotAvailable", Class::Database),
    ("UndefinedTable", Class::Database),
    ("UndefinedColumn", Class::Database),
    ("SQLException", Class::Database),
    ("SQLIntegrityConstraintViolationException", Class::Database),
    ("SQLSyntaxErrorException", Class::Database),
    ("PSQLException", Class::Database),
    ("DataIntegrityViolationException", Class::Database),
    ("DuplicateKeyException", Class::Database),
    ("DeadlockLoserDataAccessException", Class::Database),
    ("CannotAcquireLockException", Class::Database),
    ("BadSqlGrammarException", Class::Database),
    ("JDBCConnectionException", Class::Database),
    ("PersistenceException", Class::Database),
    ("OptimisticLockException", Class::Database),
    ("StaleObjectStateException", Class::Database),
    ("DbUpdateException", Class::Database),
    ("ReplyError", Class::Database),
    // Filesystem
    ("ENOENT", Class::Filesystem),
    ("EACCES", Class::Filesystem),
    ("EPERM", Class::Filesystem),
    ("EISDIR", Class::Filesystem),
    ("ENOTDIR", Class::Filesystem),
    ("EEXIST", Class::Filesystem),
    ("ENOTEMPTY", Class::Filesystem),
    ("EROFS", Class::Filesystem),
    ("ENOSPC", Class::Filesystem),
    ("EXDEV", Class::Filesystem),
    ("ELOOP", Class::Filesystem),
    ("ENAMETOOLONG", Class::Filesystem),
    ("FileNotFoundError", Class::Filesystem),
    ("IsADirectoryError", Class::Filesystem),
    ("NotADirectoryError", Class::Filesystem),
    ("FileExistsError", Class::Filesystem),
    ("PermissionError", Class::Filesystem),
    ("FileNotFoundException", Class::Filesystem),
    ("NoSuchFileException", Class::Filesystem),
    ("FileAlreadyExistsException", Class::Filesystem),
    ("DirectoryNotEmptyException", Class::Filesystem),
    ("NotDirectoryException", Class::Filesystem),
    ("FileSystemException", Class::Filesystem),
    ("DirectoryNotFoundException", Class::Filesystem),
    ("PathTooLongException", Class::Filesystem),
    // Memory
    ("OutOfMemoryError", Class::Memory),
    ("OutOfMemoryException", Class::Memory),
    ("InsufficientMemoryException", Class::Memory),
    ("MemoryError", Class::Memory),
    ("ENOMEM", Class::Memory),
    ("ERR_WORKER_OUT_OF_MEMORY", Class::Memory),
    // Configuration
    ("ConfigurationError", Class::Configuration),
    ("ConfigurationException", Class::Configuration),
    ("ConfigError", Class::Configuration),
    ("ImproperlyConfigured", Class::Configuration),
    ("EnvError", Class::Configuration),
    ("MissingEnvVarsError", Class::Configuration),
    ("BeanCreationException", Class::Configuration),
    ("BeanDefinitionStoreException", Class::Configuration),
    ("NoSuchBeanDefinitionException", Class::Configuration),
    ("UnsatisfiedDependencyException", Class::Configuration),
    ("ApplicationContextException", Class::Configuration),
    ("ConfigurationErrorsException", Class::Configuration),
    // Dependency
    ("ModuleNotFoundError", Class::Dependency),
    ("ImportError", Class::Dependency),
    ("MODULE_NOT_FOUND", Class::Dependency),
    ("ERR_MODULE_NOT_FOUND", Class::Dependency),
    ("ERR_REQUIRE_ESM", Class::Dependency),
    ("ERR_PACKAGE_PATH_NOT_EXPORTED", Class::Dependency),
    ("ClassNotFoundException", Class::Dependency),
    ("NoClassDefFoundError", Class::Dependency),
    ("NoSuchMethodError", Class::Dependency),
    ("NoSuchFieldError", Class::Dependency),
    ("UnsatisfiedLinkError", Class::Dependency),
    ("LinkageError", Class::Dependency),
    ("IncompatibleClassChangeError", Class::Dependency),
    ("DllNotFoundException", Class::Dependency),
    ("FileLoadException", Class::Dependency),
    ("TypeLoadException", Class::Dependency),
    ("ServiceUnavailable", Class::Dependency),
    ("ServiceUnavailableError", Class::Dependency),
    ("ServiceUnavailableException", Class::Dependency),
    ("BadGateway", Class::Dependency),
    ("BadGatewayError", Class::Dependency),
    ("BrokenCircuitException", Class::Dependency),
    ("CallNotPermittedException", Class::Dependency),
    ("OpenCircuitError", Class::Dependency),
    // Programming
    ("TypeError", Class::Programming),
    ("ReferenceError", Class::Programming),
    ("SyntaxError", Class::Programming),
    ("RangeError", Class::Programming),
    ("EvalError", Class::Programming),
    ("URIError", Class::Programming),
    ("AttributeError", Class::Programming),
    ("NameError", Class::Programming),
    ("UnboundLocalError", Class::Programming),
    ("KeyError", Class::Programming),
    ("IndexError", Class::Programming),
    ("AssertionError", Class::Programming),
    ("NotImplementedError", Class::Programming),
    ("NotImplementedException", Class::Programming),
    ("RecursionError", Class::Programming),
    ("ZeroDivisionError", Class::Programming),
    ("OverflowError", Class::Programming),
    ("ArithmeticError", Class::Programming),
    ("ArithmeticException", Class::Programming),
    ("NullPointerException", Class::Programming),
    ("KotlinNullPointerException", Class::Programming),
    ("NullReferenceException", Class::Programming),
    ("ClassCastException", Class::Programming),
    ("InvalidCastException", Class::Programming),
    ("IndexOutOfBoundsException", Class::Programming),
    ("ArrayIndexOutOfBoundsException", Class::Programming),
    ("StringIndexOutOfBoundsException", Class::Programming),
    ("IndexOutOfRangeException", Class::Programming),
    ("KeyNotFoundException", Class::Programming),
    ("IllegalStateException", Class::Programming),
    ("IllegalMonitorStateException", Class::Programming),
    ("InvalidOperationException", Class::Programming),
    ("UnsupportedOperationException", Class::Programming),
    ("ConcurrentModificationException", Class::Programming),
    ("NoSuchElementException", Class::Programming),
    ("UninitializedPropertyAccessException", Class::Programming),
    ("ExceptionInInitializerError", Class::Programming),
    ("StackOverflowError", Class::Programming),
    ("StackOverflowException", Class::Programming),
    ("NoMethodError", Class::Programming),
    ("FrozenError", Class::Programming),
    ("LocalJumpError", Class::Programming),
    ("ERR_ASSERTION", Class::Programming),
    ("ERR_INVALID_ARG_TYPE", Class::Programming),
    ("ERR_INVALID_ARG_VALUE", Class::Programming),
    ("ERR_INVALID_RETURN_VALUE", Class::Programming),
    ("ERR_OUT_OF_RANGE", Class::Programming),
    ("ERR_UNHANDLED_REJECTION", Class::Programming),
    ("panic", Class::Programming),
    // System
    ("EMFILE", Class::System),
    ("ENFILE", Class::System),
    ("EAGAIN", Class::System),
    ("EBUSY", Class::System),
    ("EIO", Class::System),
    ("EADDRINUSE", Class::System),
    ("SystemError", Class::System),
    ("ChildProcessError", Class::System),
    ("BlockingIOError", Class::System),
    ("InterruptedException", Class::System),
    ("RejectedExecutionException", Class::System),
    ("VirtualMachineError", Class::System),
    ("InternalError", Class::System),
    ("SIGSEGV", Class::System),
    ("SIGABRT", Class::System),
    ("SIGBUS", Class::System),
    ("SIGILL", Class::System),
    ("SIGFPE", Class::System),
    ("SIGKILL", Class::System),
];

/// Name patterns, tried in order when no exact name matched (first match wins).
pub const NAME_PATTERNS: &[(&str, NameMatch, Class)] = &[
    ("TimeoutError", NameMatch::Suffix, Class::Timeout),
    ("TimeoutException", NameMatch::Suffix, Class::Timeout),
    ("Timeout", NameMatch::Suffix, Class::Timeout),
    ("RateLimitError", NameMatch::Suffix, Class::RateLimit),
    ("RateLimitException", NameMatch::Suffix, Class::RateLimit),
    ("ThrottlingException", NameMatch::Suffix, Class::RateLimit),
    ("ValidationError", NameMatch::Suffix, Class::Validation),
    ("ValidationException", NameMatch::Suffix, Class::Validation),
    (
        "UnauthorizedError",
        NameMatch::Suffix,
        Class::Authentication,
    ),
    (
        "UnauthorizedException",
        NameMatch::Suffix,
        Class::Authentication,
    ),
    (
        "AuthenticationError",
        NameMatch::Suffix,
        Class::Authentication,
    ),
    (
        "AuthenticationException",
        NameMatch::Suffix,
        Class::Authentication,
    ),
    (
        "AuthorizationError",
        NameMatch::Suffix,
        Class::Authorization,
    ),
    (
        "AuthorizationException",
        NameMatch::Suffix,
        Class::Authorization,
    ),
    ("ForbiddenError", NameMatch::Suffix, Class::Authorization),
    (
        "ForbiddenException",
        NameMatch::Suffix,
        Class::Authorization,
    ),
    (
        "AccessDeniedException",
        NameMatch::Suffix,
        Class::Authorization,
    ),
    ("NotFoundError", NameMatch::Suffix, Class::NotFound),
    ("NotFoundException", NameMatch::Suffix, Class::NotFound),
    ("Sequelize", NameMatch::Prefix, Class::Database),
    ("Mongo", NameMatch::Prefix, Class::Database),
    ("PrismaClient", NameMatch::Prefix, Class::Database),
    ("Redis", NameMatch::Prefix, Class::Database),
    ("ER_", NameMatch::Prefix, Class::Database),
    ("SQLITE_", NameMatch::Prefix, Class::Database),
    ("ERR_TLS_", NameMatch::Prefix, Class::Network),
    ("ERR_SSL_", NameMatch::Prefix, Class::Network),
    ("ERR_SOCKET_", NameMatch::Prefix, Class::Network),
    ("ConnectionError", NameMatch::Suffix, Class::Network),
    ("ConnectionException", NameMatch::Suffix, Class::Network),
    ("NetworkError", NameMatch::Suffix, Class::Network),
    ("NetworkException", NameMatch::Suffix, Class::Network),
    ("SocketException", NameMatch::Suffix, Class::Network),
    ("SQLException", NameMatch::Suffix, Class::Database),
    ("DatabaseError", NameMatch::Suffix, Class::Database),
    ("DatabaseException", NameMatch::Suffix, Class::Database),
    ("DataAccessException", NameMatch::Suffix, Class::Database),
    (
        "ConfigurationError",
        NameMatch::Suffix,
        Class::Configuration,
    ),
    (
        "ConfigurationException",
        NameMatch::Suffix,
        Class::Configuration,
    ),
    ("ConfigError", NameMatch::Suffix, Class::Configuration),
    ("ConfigException", NameMatch::Suffix, Class::Configuration),
    ("OutOfMemoryError", NameMatch::Suffix, Class::Memory),
];

/// The last segment of a qualified name (`a.b.C`, `A::B`), trimmed.
fn simple_name(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&c| c == b'.' || c == b':') {
        Some(p) => name[p + 1..].trim_ascii(),
        None => name,
    }
}

fn class_by_name(name: &str) -> Option<Class> {
    let trimmed = name.as_bytes().trim_ascii();
    if let Some(class) = class_by_simple_name(simple_name(trimmed)) {
        return Some(class);
    }
    // Node's `Error [ERR_SOMETHING]` form: try the code.
    let code = trimmed.strip_suffix(b"]")?;
    let open = code.iter().rposition(|&c| c == b'[')?;
    class_by_simple_name(code[open + 1..].trim_ascii())
}

fn class_by_simple_name(simple: &[u8]) -> Option<Class> {
    if let Some(ids) = EXACT_INDEX.bucket(simple.len()) {
        for &id in ids {
            let (pattern, class) = NAME_EXACT[usize::from(id)];
            if eq_ignore_case(simple, pattern.as_bytes()) {
                return Some(class);
            }
        }
    }
    for &(pattern, how, class) in NAME_PATTERNS {
        let p = pattern.as_bytes();
        if p.len() > simple.len() {
            continue;
        }
        let part = match how {
            NameMatch::Prefix => &simple[..p.len()],
            NameMatch::Suffix => &simple[simple.len() - p.len()..],
        };
        if eq_ignore_case(part, p) {
            return Some(class);
        }
    }
    None
}

/// ASCII case-insensitive equality that gives up at the first difference (the std version
/// compares whole chunks, which is slower for the many near-misses here).
fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Exact names longer than this are not indexed (none are; a test checks).
const MAX_EXACT_NAME: usize = 48;

/// [`NAME_EXACT`] entry ids grouped by name length (computed at compile time).
struct LengthIndex {
    /// `ids[start[n]..start[n + 1]]` are the entries of length `n`.
    start: [u16; MAX_EXACT_NAME + 2],
    ids: [u16; NAME_EXACT.len()],
}

impl LengthIndex {
    fn bucket(&self, len: usize) -> Option<&[u16]> {
        let lo = usize::from(*self.start.get(len)?);
        let hi = usize::from(*self.start.get(len + 1)?);
        self.ids.get(lo..hi)
    }
}

static EXACT_INDEX: LengthIndex = {
    let mut start = [0u16; MAX_EXACT_NAME + 2];
    let mut i = 0;
    while i < NAME_EXACT.len() {
        let len = NAME_EXACT[i].0.len();
        assert!(len <= MAX_EXACT_NAME, "raise MAX_EXACT_NAME");
        start[len + 1] += 1;
        i += 1;
    }
    let mut b = 1;
    while b < start.len() {
        start[b] += start[b - 1];
        b += 1;
    }
    let mut fill = start;
    let mut ids = [0u16; NAME_EXACT.len()];
    i = 0;
    while i < NAME_EXACT.len() {
        let len = NAME_EXACT[i].0.len();
        ids[fill[len] as usize] = i as u16;
        fill[len] += 1;
        i += 1;
    }
    LengthIndex { start, ids }
};

// ---------------------------------------------------------------------------------------------
// Messages

/// Only this many leading bytes of a message are scanned: the phrases that tell the kind of an
/// error come first, and it bounds the cost for huge messages.
pub const MESSAGE_SCAN_BYTES: usize = 512;

/// A message rule: a lowercase phrase found at the start of a word; `whole_word` also requires
/// that it ends a word.
#[derive(Debug, Clone, Copy)]
pub struct MessageRule {
    /// Lowercase ASCII, starting with a letter or digit.
    pub phrase: &'static str,
    /// The phrase must also end at a word boundary.
    pub whole_word: bool,
    /// The class it indicates.
    pub class: Class,
}

const fn at(phrase: &'static str, class: Class) -> MessageRule {
    MessageRule {
        phrase,
        whole_word: false,
        class,
    }
}

const fn word(phrase: &'static str, class: Class) -> MessageRule {
    MessageRule {
        phrase,
        whole_word: true,
        class,
    }
}

/// Message rules in priority order: the first rule that occurs anywhere in the message wins,
/// so specific phrases come before generic ones.
pub const MESSAGE_RULES: &[MessageRule] = &[
    // Error codes that Node and libc put into messages ("connect ECONNREFUSED 10.0.0.7:5432").
    word("econnrefused", Class::Network),
    word("econnreset", Class::Network),
    word("econnaborted", Class::Network),
    word("epipe", Class::Network),
    word("enotfound", Class::Network),
    word("eai_again", Class::Network),
    word("ehostunreach", Class::Network),
    word("enetunreach", Class::Network),
    word("etimedout", Class::Timeout),
    word("esockettimedout", Class::Timeout),
    word("enoent", Class::Filesystem),
    word("eacces", Class::Filesystem),
    word("eperm", Class::Filesystem),
    word("eisdir", Class::Filesystem),
    word("enotdir", Class::Filesystem),
    word("eexist", Class::Filesystem),
    word("enotempty", Class::Filesystem),
    word("erofs", Class::Filesystem),
    word("enospc", Class::Filesystem),
    word("emfile", Class::System),
    word("enfile", Class::System),
    word("eaddrinuse", Class::System),
    word("enomem", Class::Memory),
    // Memory
    at("out of memory", Class::Memory),
    at("cannot allocate memory", Class::Memory),
    at("allocation failed", Class::Memory),
    at("memory limit", Class::Memory),
    at("heap limit", Class::Memory),
    word("oom", Class::Memory),
    // Database specifics (before timeouts: "lock wait timeout exceeded" is a database problem)
    at("deadlock", Class::Database),
    at("lock wait timeout", Class::Database),
    at("duplicate key", Class::Database),
    at("duplicate entry", Class::Database),
    at("unique constraint", Class::Database),
    at("foreign key constraint", Class::Database),
    at("violates", Class::Database),
    at("constraint failed", Class::Database),
    at("sqlstate", Class::Database),
    at("syntax error at or near", Class::Database),
    at("relation \"", Class::Database),
    at("column \"", Class::Database),
    at("no such table", Class::Database),
    at("no such column", Class::Database),
    at("unknown column", Class::Database),
    at("ambiguous column", Class::Database),
    at("too many connections", Class::Database),
    at("could not serialize access", Class::Database),
    at("database is locked", Class::Database),
    at("sqlite", Class::Database),
    // Timeout
    at("timed out", Class::Timeout),
    at("timeout", Class::Timeout),
    at("time out", Class::Timeout),
    at("deadline exceeded", Class::Timeout),
    // Rate limit
    at("too many requests", Class::RateLimit),
    at("rate limit", Class::RateLimit),
    at("rate-limit", Class::RateLimit),
    at("ratelimit", Class::RateLimit),
    at("rate exceeded", Class::RateLimit),
    at("throttl", Class::RateLimit),
    at("quota exceeded", Class::RateLimit),
    word("429", Class::RateLimit),
    // Authentication
    at("unauthorized", Class::Authentication),
    at("unauthorised", Class::Authentication),
    at("unauthenticated", Class::Authentication),
    at("not authenticated", Class::Authentication),
    at("authentication", Class::Authentication),
    at("invalid token", Class::Authentication),
    at("token expired", Class::Authentication),
    at("token has expired", Class::Authentication),
    at("expired token", Class::Authentication),
    word("jwt", Class::Authentication),
    at("invalid credentials", Class::Authentication),
    at("bad credentials", Class::Authentication),
    at("invalid password", Class::Authentication),
    at("incorrect password", Class::Authentication),
    at("wrong password", Class::Authentication),
    at("invalid username or password", Class::Authentication),
    at("incorrect username or password", Class::Authentication),
    at("login failed", Class::Authentication),
    at("invalid api key", Class::Authentication),
    at("invalid signature", Class::Authentication),
    word("401", Class::Authentication),
    // Authorization
    at("forbidden", Class::Authorization),
    at("permission denied", Class::Authorization),
    at("access denied", Class::Authorization),
    at("access is denied", Class::Authorization),
    at("not authorized", Class::Authorization),
    at("not authorised", Class::Authorization),
    at("not allowed", Class::Authorization),
    at("not permitted", Class::Authorization),
    at("operation not permitted", Class::Authorization),
    at("insufficient permission", Class::Authorization),
    at("insufficient privilege", Class::Authorization),
    at("insufficient scope", Class::Authorization),
    at("have permission", Class::Authorization),
    at("no permission", Class::Authorization),
    word("403", Class::Authorization),
    // Dependency: code
    at("cannot find module", Class::Dependency),
    at("module not found", Class::Dependency),
    at("no module named", Class::Dependency),
    at("cannot find package", Class::Dependency),
    at("cannot import", Class::Dependency),
    at("could not load file or assembly", Class::Dependency),
    at("command not found", Class::Dependency),
    at("is not installed", Class::Dependency),
    at("failed to resolve import", Class::Dependency),
    at("err_require_esm", Class::Dependency),
    at("err_module_not_found", Class::Dependency),
    // Filesystem
    at("no such file", Class::Filesystem),
    at("is a directory", Class::Filesystem),
    at("not a directory", Class::Filesystem),
    at("file exists", Class::Filesystem),
    at("file already exists", Class::Filesystem),
    at("read-only file system", Class::Filesystem),
    at("no space left", Class::Filesystem),
    at("disk full", Class::Filesystem),
    at("directory not empty", Class::Filesystem),
    at("file not found", Class::Filesystem),
    // Not found
    at("not found", Class::NotFound),
    at("does not exist", Class::NotFound),
    at("doesn't exist", Class::NotFound),
    at("no such", Class::NotFound),
    at("no route matches", Class::NotFound),
    at("could not find", Class::NotFound),
    word("404", Class::NotFound),
    // Network
    at("connection refused", Class::Network),
    at("connection reset", Class::Network),
    at("connection closed", Class::Network),
    at("connection aborted", Class::Network),
    at("connection lost", Class::Network),
    at("connection error", Class::Network),
    at("connection failed", Class::Network),
    at("connection terminated", Class::Network),
    at("failed to connect", Class::Network),
    at("could not connect", Class::Network),
    at("unable to connect", Class::Network),
    at("socket hang up", Class::Network),
    at("socket closed", Class::Network),
    at("network", Class::Network),
    at("host unreachable", Class::Network),
    at("destination unreachable", Class::Network),
    at("no route to host", Class::Network),
    at("getaddrinfo", Class::Network),
    at("name resolution", Class::Network),
    at("name or service not known", Class::Network),
    word("dns", Class::Network),
    at("broken pipe", Class::Network),
    at("fetch failed", Class::Network),
    at("failed to fetch", Class::Network),
    word("ssl", Class::Network),
    word("tls", Class::Network),
    at("certificate", Class::Network),
    at("handshake", Class::Network),
    // Dependency: upstream services
    at("service unavailable", Class::Dependency),
    at("bad gateway", Class::Dependency),
    at("upstream", Class::Dependency),
    at("circuit breaker", Class::Dependency),
    at("circuit is open", Class::Dependency),
    word("502", Class::Dependency),
    word("503", Class::Dependency),
    // Database: names of stores (after network, so "redis connection refused" is network)
    at("mongo", Class::Database),
    at("redis", Class::Database),
    at("postgres", Class::Database),
    at("mysql", Class::Database),
    // Programming
    at("is not a function", Class::Programming),
    at("is not defined", Class::Programming),
    at("is not a constructor", Class::Programming),
    at("circular structure", Class::Programming),
    at("cannot set headers", Class::Programming),
    at("cannot invoke", Class::Programming),
    at("unsupported operand", Class::Programming),
    at("with overflow", Class::Programming),
    at("called `option::unwrap()`", Class::Programming),
    at("called `result::unwrap()`", Class::Programming),
    at("unhandled rejection", Class::Programming),
    at("cannot read propert", Class::Programming),
    at("cannot set propert", Class::Programming),
    at("cannot destructure", Class::Programming),
    at("undefined is not", Class::Programming),
    at("null is not", Class::Programming),
    at("null pointer", Class::Programming),
    at("nil pointer", Class::Programming),
    at("nil map", Class::Programming),
    at("invalid memory address", Class::Programming),
    at("index out of range", Class::Programming),
    at("index out of bounds", Class::Programming),
    at("out of bounds", Class::Programming),
    at("assertion", Class::Programming),
    at("unreachable code", Class::Programming),
    at("not implemented", Class::Programming),
    at("unwrap()", Class::Programming),
    at("panicked", Class::Programming),
    at("maximum call stack", Class::Programming),
    at("stack overflow", Class::Programming),
    at("recursion", Class::Programming),
    at("division by zero", Class::Programming),
    at("divide by zero", Class::Programming),
    at("has no attribute", Class::Programming),
    at("not subscriptable", Class::Programming),
    at("not callable", Class::Programming),
    at("not iterable", Class::Programming),
    at("before initialization", Class::Programming),
    // Configuration
    at("environment variable", Class::Configuration),
    at("env var", Class::Configuration),
    at("not configured", Class::Configuration),
    at("misconfigur", Class::Configuration),
    at("configuration", Class::Configuration),
    at("config", Class::Configuration),
    // System
    at("segmentation fault", Class::System),
    at("sigsegv", Class::System),
    at("sigabrt", Class::System),
    at("sigkill", Class::System),
    at("sigbus", Class::System),
    at("core dumped", Class::System),
    at("too many open files", Class::System),
    at("address already in use", Class::System),
    at("resource temporarily unavailable", Class::System),
    at("input/output error", Class::System),
    at("killed", Class::System),
    at("exited with code", Class::System),
    at("spawn", Class::System),
    // Validation: generic words last
    at("validation", Class::Validation),
    at("invalid", Class::Validation),
    at("malformed", Class::Validation),
    at("must be", Class::Validation),
    at("must not", Class::Validation),
    at("is required", Class::Validation),
    at("are required", Class::Validation),
    at("required field", Class::Validation),
    at("missing required", Class::Validation),
    at("missing field", Class::Validation),
    at("bad request", Class::Validation),
    at("unprocessable", Class::Validation),
    at("not valid", Class::Validation),
    at("cannot be empty", Class::Validation),
    at("cannot be blank", Class::Validation),
    at("too long", Class::Validation),
    at("too short", Class::Validation),
    at("out of range", Class::Validation),
    at("expected", Class::Validation),
    at("unexpected", Class::Validation),
    at("json", Class::Validation),
    at("failed to parse", Class::Validation),
    at("could not parse", Class::Validation),
    at("unable to parse", Class::Validation),
    at("parse error", Class::Validation),
    word("400", Class::Validation),
    word("422", Class::Validation),
];

/// Slots of the two-byte rule index: `0-9`, `a-z` (case-folded), anything else.
const SLOTS: usize = 37;

const fn slot_of(b: u8) -> u8 {
    match b.to_ascii_lowercase() {
        c @ b'0'..=b'9' => c - b'0',
        c @ b'a'..=b'z' => 10 + (c - b'a'),
        _ => (SLOTS - 1) as u8,
    }
}

static SLOT: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = slot_of(i as u8);
        i += 1;
    }
    table
};

/// Index key of a phrase or of the text at a word start: its first two bytes.
fn key(first: u8, second: u8) -> usize {
    usize::from(SLOT[usize::from(first)]) * SLOTS + usize::from(SLOT[usize::from(second)])
}

/// [`MESSAGE_RULES`] ids grouped by the first two bytes of their phrase, ascending within a
/// group (computed at compile time), so a word start is compared with a handful of rules.
struct PrefixIndex {
    /// `ids[start[k]..start[k + 1]]` are the rules whose phrase has key `k`.
    start: [u16; SLOTS * SLOTS + 1],
    ids: [u16; MESSAGE_RULES.len()],
}

impl PrefixIndex {
    fn bucket(&self, key: usize) -> &[u16] {
        match (self.start.get(key), self.start.get(key + 1)) {
            (Some(&lo), Some(&hi)) => self
                .ids
                .get(usize::from(lo)..usize::from(hi))
                .unwrap_or_default(),
            _ => &[],
        }
    }
}

const fn phrase_key(phrase: &str) -> usize {
    let p = phrase.as_bytes();
    assert!(p.len() >= 2, "phrases have at least two bytes");
    slot_of(p[0]) as usize * SLOTS + slot_of(p[1]) as usize
}

static MESSAGE_INDEX: PrefixIndex = {
    let mut start = [0u16; SLOTS * SLOTS + 1];
    let mut i = 0;
    while i < MESSAGE_RULES.len() {
        let first = MESSAGE_RULES[i].phrase.as_bytes()[0];
        assert!(first.is_ascii_lowercase() || first.is_ascii_digit());
        start[phrase_key(MESSAGE_RULES[i].phrase) + 1] += 1;
        i += 1;
    }
    let mut b = 1;
    while b < start.len() {
        start[b] += start[b - 1];
        b += 1;
    }
    let mut fill = start;
    let mut ids = [0u16; MESSAGE_RULES.len()];
    i = 0;
    while i < MESSAGE_RULES.len() {
        let k = phrase_key(MESSAGE_RULES[i].phrase);
        ids[fill[k] as usize] = i as u16;
        fill[k] += 1;
        i += 1;
    }
    PrefixIndex { start, ids }
};

/// Byte kinds for the message walk.
const OTHER: u8 = 0;
const WORD: u8 = 1;
const QUOTE: u8 = 2;
static BYTE_KIND: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() {
            table[i] = WORD;
        } else if b == b'\'' || b == b'"' || b == b'`' {
            table[i] = QUOTE;
        }
        i += 1;
    }
    table
};

fn class_by_message(message: &str) -> Option<Class> {
    let msg = message.as_bytes();
    let msg = &msg[..msg.len().min(MESSAGE_SCAN_BYTES)];
    let mut best = usize::MAX;
    let mut unclosed = [false; 3];
    let mut i = 0;
    loop {
        // Next letter, digit or quote.
        i += msg[i..]
            .iter()
            .position(|&c| BYTE_KIND[usize::from(c)] != OTHER)
            .unwrap_or(msg.len() - i);
        let Some(&b) = msg.get(i) else { break };
        if let Some(q) = quote_kind(b) {
            // Skip a quoted value (the fingerprint's masking rule).
            if (i == 0 || !msg[i - 1].is_ascii_alphanumeric()) && !unclosed[q] {
                match closing_quote(msg, i + 1, b) {
                    Some(end) => {
                        i = end + 1;
                        continue;
                    }
                    None => unclosed[q] = true,
                }
            }
            i += 1;
            continue;
        }
        // Start of a word: try the rules that begin with its first two bytes, best first,
        // looking at their first four bytes before comparing whole phrases.
        let k = key(b, msg.get(i + 1).copied().unwrap_or(0));
        let head = head_at(msg, i);
        for &id in MESSAGE_INDEX.bucket(k) {
            let id = usize::from(id);
            if id >= best {
                break;
            }
            let (bytes, mask) = RULE_HEADS[id];
            if head & mask == bytes && rule_matches_at(msg, i, &MESSAGE_RULES[id]) {
                best = id;
                break;
            }
        }
        if best == 0 {
            break;
        }
        // Past the rest of the word.
        i += 1;
        i += msg[i..]
            .iter()
            .position(|&c| BYTE_KIND[usize::from(c)] != WORD)
            .unwrap_or(msg.len() - i);
    }
    MESSAGE_RULES.get(best).map(|rule| rule.class)
}

/// Up to four bytes at `i`, lowercased, little-endian (missing bytes are zero).
fn head_at(msg: &[u8], i: usize) -> u32 {
    let mut head = 0;
    for (k, &c) in msg.iter().skip(i).take(4).enumerate() {
        head |= u32::from(c.to_ascii_lowercase()) << (8 * k);
    }
    head
}

/// The first (up to) four bytes of each rule's phrase and the mask covering them.
static RULE_HEADS: [(u32, u32); MESSAGE_RULES.len()] = {
    let mut heads = [(0u32, 0u32); MESSAGE_RULES.len()];
    let mut i = 0;
    while i < MESSAGE_RULES.len() {
        let p = MESSAGE_RULES[i].phrase.as_bytes();
        let mut k = 0;
        while k < 4 && k < p.len() {
            heads[i].0 |= (p[k] as u32) << (8 * k);
            heads[i].1 |= 0xff << (8 * k);
            k += 1;
        }
        i += 1;
    }
    heads
};

fn rule_matches_at(msg: &[u8], i: usize, rule: &MessageRule) -> bool {
    let phrase = rule.phrase.as_bytes();
    let end = i + phrase.len();
    msg.get(i..end)
        .is_some_and(|text| eq_ignore_case(text, phrase))
        && !(rule.whole_word && msg.get(end).is_some_and(u8::is_ascii_alphanumeric))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(name: Option<&str>, message: &str) -> Class {
        classify(Level::Error, name, message).0
    }

    #[test]
    fn as_str_is_snake_case_and_unique() {
        let names: Vec<_> = Class::ALL.iter().map(|c| c.as_str()).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{n}"
            );
            assert!(!names[i + 1..].contains(n), "duplicate {n}");
        }
        assert_eq!(Class::NotFound.as_str(), "not_found");
        assert_eq!(Class::RateLimit.as_str(), "rate_limit");
        let sev: Vec<_> = Severity::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(sev, ["low", "medium", "high", "critical"]);
    }

    #[test]
    fn tables_are_well_formed() {
        for (i, (a, _)) in NAME_EXACT.iter().enumerate() {
            assert!(!a.is_empty() && a.len() <= MAX_EXACT_NAME, "{a}");
            assert!(
                !a.contains(['.', ':']) && a.trim() == *a,
                "{a}: exact names are last segments"
            );
            for (b, _) in &NAME_EXACT[i + 1..] {
                assert!(!a.eq_ignore_ascii_case(b), "duplicate exact name {a}");
            }
        }
        for rule in MESSAGE_RULES {
            let p = rule.phrase;
            assert_eq!(p, p.to_ascii_lowercase(), "{p}: phrases are lowercase");
            assert!(p.as_bytes()[0].is_ascii_alphanumeric(), "{p}");
        }
        // The index holds every rule once.
        let mut seen: Vec<u16> = MESSAGE_INDEX.ids.to_vec();
        seen.sort_unstable();
        assert_eq!(seen, (0..MESSAGE_RULES.len() as u16).collect::<Vec<_>>());
    }

    /// `docs/classification.md` is the user's copy of these tables; keep them in step.
    #[test]
    fn user_documentation_lists_every_rule() {
        let doc = include_str!("../../docs/classification.md");
        for (name, class) in NAME_EXACT {
            assert!(doc.contains(&format!("`{name}`")), "docs miss name {name}");
            assert!(doc.contains(&format!("`{}`", class.as_str())));
        }
        for (pattern, how, _) in NAME_PATTERNS {
            let shown = match how {
                NameMatch::Prefix => format!("`{pattern}…`"),
                NameMatch::Suffix => format!("`…{pattern}`"),
            };
            assert!(doc.contains(&shown), "docs miss pattern {shown}");
        }
        for rule in MESSAGE_RULES {
            let shown = if rule.phrase.contains('`') {
                format!("`` {} ``", rule.phrase)
            } else {
                format!("`{}`", rule.phrase)
            };
            assert!(doc.contains(&shown), "docs miss phrase {shown}");
        }
    }

    #[test]
    fn every_class_is_reachable_by_name_and_by_message() {
        let by_name = [
            ("ValidationError", Class::Validation),
            ("JsonWebTokenError", Class::Authentication),
            ("ForbiddenError", Class::Authorization),
            ("NotFoundError", Class::NotFound),
            ("TooManyRequestsError", Class::RateLimit),
            ("ECONNREFUSED", Class::Network),
            ("ETIMEDOUT", Class::Timeout),
            ("SequelizeUniqueConstraintError", Class::Database),
            ("ENOENT", Class::Filesystem),
            ("OutOfMemoryError", Class::Memory),
            ("ImproperlyConfigured", Class::Configuration),
            ("ModuleNotFoundError", Class::Dependency),
            ("TypeError", Class::Programming),
            ("EMFILE", Class::System),
        ];
        let by_message = [
            ("\"email\" must be a valid email", Class::Validation),
            ("jwt expired", Class::Authentication),
            (
                "User is not authorized to perform: s3:GetObject",
                Class::Authorization,
            ),
            ("Order 42 not found", Class::NotFound),
            ("Request failed with status code 429", Class::RateLimit),
            ("connect ECONNREFUSED 127.0.0.1:5432", Class::Network),
            ("Operation timed out after 3000ms", Class::Timeout),
            (
                "duplicate key value violates unique constraint \"users_email_key\"",
                Class::Database,
            ),
            (
                "open '/etc/app.yaml': no such file or directory",
                Class::Filesystem,
            ),
            (
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
                Class::Memory,
            ),
            (
                "Missing environment variable DATABASE_URL",
                Class::Configuration,
            ),
            ("Cannot find module 'express'", Class::Dependency),
            (
                "Cannot read properties of undefined (reading 'id')",
                Class::Programming,
            ),
            ("Segmentation fault (core dumped)", Class::System),
        ];
        let mut seen = Vec::new();
        for (name, want) in by_name {
            assert_eq!(class_of(Some(name), "x"), want, "name {name}");
            seen.push(want);
        }
        for (msg, want) in by_message {
            assert_eq!(class_of(None, msg), want, "message {msg:?}");
            assert_eq!(
                class_of(Some("Error"), msg),
                want,
                "generic name, message {msg:?}"
            );
        }
        assert_eq!(class_of(None, "something odd happened"), Class::Unknown);
        assert_eq!(class_of(Some("Error"), ""), Class::Unknown);
        seen.push(Class::Unknown);
        for class in Class::ALL {
            assert!(seen.contains(&class), "{class:?} untested");
        }
    }

    #[test]
    fn brief_name_examples() {
        let cases = [
            ("TypeError", Class::Programming),
            ("ReferenceError", Class::Programming),
            ("SyntaxError", Class::Programming),
            ("NullPointerException", Class::Programming),
            ("KeyError", Class::Programming),
            ("ValueError", Class::Validation),
            ("ECONNREFUSED", Class::Network),
            ("ETIMEDOUT", Class::Timeout),
            ("ENOENT", Class::Filesystem),
            ("EACCES", Class::Filesystem),
            ("MemoryError", Class::Memory),
            ("OutOfMemoryError", Class::Memory),
            ("ModuleNotFoundError", Class::Dependency),
            ("SequelizeUniqueConstraintError", Class::Database),
        ];
        for (name, want) in cases {
            assert_eq!(class_of(Some(name), "x"), want, "{name}");
        }
    }

    #[test]
    fn names_are_matched_case_insensitively_on_their_last_segment() {
        assert_eq!(
            class_of(Some("java.lang.NullPointerException"), ""),
            Class::Programming
        );
        assert_eq!(
            class_of(Some("java.lang.OutOfMemoryError"), ""),
            Class::Memory
        );
        assert_eq!(
            class_of(Some("ActiveRecord::RecordNotFound"), ""),
            Class::NotFound
        );
        assert_eq!(
            class_of(Some("requests.exceptions.ConnectionError"), ""),
            Class::Network
        );
        assert_eq!(
            class_of(Some("sqlalchemy.exc.IntegrityError"), ""),
            Class::Database
        );
        assert_eq!(class_of(Some("econnrefused"), ""), Class::Network);
        assert_eq!(class_of(Some("  typeerror "), ""), Class::Programming);
        assert_eq!(class_of(Some("errors: TypeError"), ""), Class::Programming);
        assert_eq!(
            class_of(Some("Error [ERR_MODULE_NOT_FOUND]"), ""),
            Class::Dependency
        );
        assert_eq!(
            class_of(Some("TypeError [ERR_INVALID_ARG_TYPE]"), ""),
            Class::Programming
        );
    }

    #[test]
    fn name_patterns_in_table_order() {
        assert_eq!(
            class_of(Some("SequelizeConnectionRefusedError"), ""),
            Class::Database
        );
        assert_eq!(
            class_of(Some("MongoServerSelectionError"), ""),
            Class::Database
        );
        assert_eq!(
            class_of(Some("PrismaClientKnownRequestError"), ""),
            Class::Database
        );
        assert_eq!(
            class_of(Some("PrismaClientValidationError"), ""),
            Class::Validation
        );
        assert_eq!(class_of(Some("ER_DUP_ENTRY"), ""), Class::Database);
        assert_eq!(class_of(Some("SQLITE_CONSTRAINT"), ""), Class::Database);
        assert_eq!(
            class_of(Some("ERR_TLS_CERT_ALTNAME_INVALID"), ""),
            Class::Network
        );
        // Suffix timeout before the vendor prefix.
        assert_eq!(
            class_of(Some("MongoNetworkTimeoutError"), ""),
            Class::Timeout
        );
        assert_eq!(class_of(Some("ConnectionTimeoutError"), ""), Class::Timeout);
        assert_eq!(class_of(Some("PoolTimeout"), ""), Class::Timeout);
        assert_eq!(
            class_of(Some("SchemaValidationError"), ""),
            Class::Validation
        );
        assert_eq!(class_of(Some("UserNotFoundException"), ""), Class::NotFound);
        assert_eq!(
            class_of(Some("ApiAuthenticationError"), ""),
            Class::Authentication
        );
        assert_eq!(class_of(Some("StripeRateLimitError"), ""), Class::RateLimit);
        assert_eq!(
            class_of(Some("YamlConfigException"), ""),
            Class::Configuration
        );
        // Exact beats patterns: ModuleNotFoundError is not "*NotFoundError".
        assert_eq!(class_of(Some("ModuleNotFoundError"), ""), Class::Dependency);
        assert_eq!(class_of(Some("FileNotFoundError"), ""), Class::Filesystem);
    }

    #[test]
    fn name_wins_over_message() {
        assert_eq!(
            class_of(Some("TypeError"), "request timed out"),
            Class::Programming
        );
        assert_eq!(
            class_of(Some("ValidationError"), "ECONNREFUSED"),
            Class::Validation
        );
        // Generic names leave it to the message.
        for generic in [
            "Error",
            "Exception",
            "RuntimeError",
            "OSError",
            "IOException",
            "Throwable",
        ] {
            assert_eq!(
                class_of(Some(generic), "request timed out"),
                Class::Timeout,
                "{generic}"
            );
        }
    }

    #[test]
    fn first_message_rule_in_table_order_wins() {
        // Position in the message does not matter; table order does.
        assert_eq!(
            class_of(
                None,
                "connection refused while waiting: operation timed out"
            ),
            Class::Timeout
        );
        assert_eq!(
            class_of(
                None,
                "Lock wait timeout exceeded; try restarting transaction"
            ),
            Class::Database
        );
        assert_eq!(
            class_of(None, "EACCES: permission denied, open '/var/log/app.log'"),
            Class::Filesystem
        );
        assert_eq!(
            class_of(None, "permission denied for table users"),
            Class::Authorization
        );
        assert_eq!(class_of(None, "401 Unauthorized"), Class::Authentication);
        assert_eq!(class_of(None, "Invalid token"), Class::Authentication);
        assert_eq!(class_of(None, "Invalid email address"), Class::Validation);
        assert_eq!(
            class_of(
                None,
                "runtime error: invalid memory address or nil pointer dereference"
            ),
            Class::Programming
        );
        assert_eq!(
            class_of(None, "Error: Cannot find module './config'"),
            Class::Dependency
        );
        assert_eq!(
            class_of(None, "sh: 1: convert: command not found"),
            Class::Dependency
        );
        assert_eq!(class_of(None, "503 Service Unavailable"), Class::Dependency);
        assert_eq!(class_of(None, "redis connection refused"), Class::Network);
        assert_eq!(
            class_of(None, "internal error: entered unreachable code"),
            Class::Programming
        );
        assert_eq!(class_of(None, "connect EHOSTUNREACH"), Class::Network);
        assert_eq!(class_of(None, "No route to host"), Class::Network);
        // Quoted values are skipped, but a phrase may include the quote itself.
        assert_eq!(
            class_of(None, "called `Option::unwrap()` on a `None` value"),
            Class::Programming
        );
        assert_eq!(
            class_of(None, "column \"nme\" does not exist"),
            Class::Database
        );
        assert_eq!(
            class_of(None, "Converting circular structure to JSON"),
            Class::Programming
        );
        assert_eq!(
            class_of(None, "Connection terminated unexpectedly"),
            Class::Network
        );
    }

    #[test]
    fn message_matching_is_word_anchored_and_case_insensitive() {
        assert_eq!(class_of(None, "REQUEST TIMED OUT"), Class::Timeout);
        assert_eq!(class_of(None, "Rate Limited by upstream"), Class::RateLimit);
        // Word start: "oom" inside "room", "dns" inside "fdns", "429" inside "14290".
        assert_eq!(class_of(None, "no room left"), Class::Unknown);
        assert_eq!(class_of(None, "fdns"), Class::Unknown);
        assert_eq!(class_of(None, "user 14290 has 4290 items"), Class::Unknown);
        // Whole words: "429" but not "4291"; "dns" but not "dnssec".
        assert_eq!(class_of(None, "status 429"), Class::RateLimit);
        assert_eq!(class_of(None, "status 4291"), Class::Unknown);
        assert_eq!(class_of(None, "dnssec"), Class::Unknown);
        assert_eq!(class_of(None, "dns lookup failed"), Class::Network);
        // Prefix phrases match longer words.
        assert_eq!(class_of(None, "Throttling: slow down"), Class::RateLimit);
        assert_eq!(
            class_of(None, "Service misconfigured"),
            Class::Configuration
        );
    }

    #[test]
    fn quoted_values_do_not_classify() {
        assert_eq!(
            class_of(
                None,
                "Cannot read properties of undefined (reading 'timeout')"
            ),
            Class::Programming
        );
        assert_eq!(class_of(None, "unknown option 'timeout'"), Class::Unknown);
        assert_eq!(
            class_of(None, "field \"password\" rejected"),
            Class::Unknown
        );
        // An unclosed quote is text.
        assert_eq!(class_of(None, "it's a timeout"), Class::Timeout);
        assert_eq!(class_of(None, "'timeout"), Class::Timeout);
    }

    #[test]
    fn only_the_message_prefix_is_scanned() {
        let pad = "x ".repeat(MESSAGE_SCAN_BYTES / 2);
        assert_eq!(class_of(None, &format!("{pad}timed out")), Class::Unknown);
        let pad = "x ".repeat(MESSAGE_SCAN_BYTES / 2 - 10);
        assert_eq!(class_of(None, &format!("{pad}timed out")), Class::Timeout);
    }

    #[test]
    fn odd_input_does_not_panic() {
        for s in [
            "",
            " ",
            "'",
            "\"",
            "`",
            "''",
            "\u{e9}\u{e9}",
            "[",
            "]",
            "[]",
            "a]",
            "Error [",
            "Error []",
            ".",
            ":",
            "::",
            "a.",
            "\u{1F600}timeout",
            "timeou",
            "e",
            "4",
            "42",
        ] {
            let _ = classify(Level::Error, Some(s), s);
        }
        let long = "timeout ".repeat(10_000);
        let _ = classify(Level::Error, Some(&long), &long);
    }

    #[test]
    fn severity_table() {
        for class in Class::ALL {
            assert_eq!(
                severity(Level::Fatal, class),
                Severity::Critical,
                "{class:?}"
            );
            for low in [Level::Info, Level::Debug, Level::Trace] {
                assert_eq!(severity(low, class), Severity::Low, "{class:?}");
            }
            assert!(
                severity(Level::Warn, class) <= Severity::Medium,
                "{class:?}"
            );
            assert!(
                severity(Level::Warn, class) < severity(Level::Error, class)
                    || severity(Level::Error, class) == Severity::Low
            );
        }
        let error = |c| severity(Level::Error, c);
        assert_eq!(error(Class::Memory), Severity::Critical);
        for c in [
            Class::Programming,
            Class::Database,
            Class::System,
            Class::Configuration,
            Class::Dependency,
        ] {
            assert_eq!(error(c), Severity::High, "{c:?}");
        }
        for c in [
            Class::Validation,
            Class::Authentication,
            Class::Authorization,
            Class::NotFound,
            Class::RateLimit,
            Class::Network,
            Class::Timeout,
            Class::Filesystem,
            Class::Unknown,
        ] {
            assert_eq!(error(c), Severity::Medium, "{c:?}");
        }
        let warn = |c| severity(Level::Warn, c);
        assert_eq!(warn(Class::Memory), Severity::Medium);
        assert_eq!(warn(Class::Programming), Severity::Medium);
        assert_eq!(warn(Class::Validation), Severity::Low);
        assert_eq!(warn(Class::Unknown), Severity::Low);
    }

    #[test]
    fn classify_combines_class_and_severity() {
        assert_eq!(
            classify(Level::Fatal, Some("TypeError"), "x"),
            (Class::Programming, Severity::Critical)
        );
        assert_eq!(
            classify(Level::Error, Some("MemoryError"), ""),
            (Class::Memory, Severity::Critical)
        );
        assert_eq!(
            classify(Level::Warn, None, "rate limit exceeded"),
            (Class::RateLimit, Severity::Low)
        );
        assert_eq!(
            classify(Level::Info, Some("ECONNRESET"), ""),
            (Class::Network, Severity::Low)
        );
    }
}
