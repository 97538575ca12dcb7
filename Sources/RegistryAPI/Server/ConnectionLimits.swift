import RegistryCore

/// The `connections` settings: how long a client may take at each stage of a connection, how
/// many connections are served at once, and how large a request's header block may be.
///
/// The defaults are what an operator of a device registry would pick: a peer that stops
/// sending (slowloris), never finishes a TLS handshake or opens connections without end must not
/// hold the daemon's file descriptors and memory.
///
/// ```json
/// {"connections": {"maxConnections": 4096, "idleTimeoutSeconds": 60, "headerTimeoutSeconds": 10,
///                  "bodyTimeoutSeconds": 30, "tlsHandshakeTimeoutSeconds": 10, "maxHeaderBytes": 32768}}
/// ```
public struct ConnectionLimits: Sendable, Hashable {
    /// Connections served at once; more wait in the listen backlog until one closes.
    public var maxConnections: Int
    /// A keep-alive connection with no request in progress is closed after this long.
    public var idleTimeout: Duration
    /// From a request's first byte to the end of its header block.
    public var headerTimeout: Duration
    /// From the end of the header block to the end of the body.
    public var bodyTimeout: Duration
    /// From accepting the connection to a finished TLS handshake.
    public var tlsHandshakeTimeout: Duration
    /// The header block's total size (names, values and their separators); larger answers 431.
    public var maxHeaderBytes: Int

    public init(
        maxConnections: Int = 4096,
        idleTimeout: Duration = .seconds(60),
        headerTimeout: Duration = .seconds(10),
        bodyTimeout: Duration = .seconds(30),
        tlsHandshakeTimeout: Duration = .seconds(10),
        maxHeaderBytes: Int = 32 * 1024
    ) {
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.tlsHandshakeTimeout = tlsHandshakeTimeout
        self.maxHeaderBytes = maxHeaderBytes
    }

    public static let keys = [
        "bodyTimeoutSeconds", "headerTimeoutSeconds", "idleTimeoutSeconds", "maxConnections", "maxHeaderBytes", "tlsHandshakeTimeoutSeconds",
    ]

    public init(json: JSONValue) throws(ConfigurationFieldError) {
        self.init()
        guard case .object(let fields) = json else { throw ConfigurationFieldError("connections", "must be an object") }
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            let field = "connections.\(key)"
            func count(_ range: ClosedRange<Int64>) throws(ConfigurationFieldError) -> Int {
                guard let number = value.intValue, range.contains(number) else {
                    throw ConfigurationFieldError(field, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
                }
                return Int(number)
            }
            switch key {
            case "maxConnections": maxConnections = try count(1...1_000_000)
            case "idleTimeoutSeconds": idleTimeout = try value.seconds(field)
            case "headerTimeoutSeconds": headerTimeout = try value.seconds(field)
            case "bodyTimeoutSeconds": bodyTimeout = try value.seconds(field)
            case "tlsHandshakeTimeoutSeconds": tlsHandshakeTimeout = try value.seconds(field)
            // Below 4 KiB even an SDK's ordinary request would not fit; above 64 KiB the HTTP
            // decoder's own hard limit (`decoderHeaderBytes`) would cut first.
            case "maxHeaderBytes": maxHeaderBytes = try count(4096...Int64(Self.decoderHeaderBytes))
            default: throw ConfigurationFieldError(field, "unknown key (known: \(Self.keys.joined(separator: ", ")))")
            }
        }
    }

    /// The HTTP decoder's hard limit on a header block: above it the parser stops and the guard
    /// answers 431 itself; between `maxHeaderBytes` and this, the request reaches the router and
    /// the header-size middleware answers 431 in the Azure error format.
    public static let decoderHeaderBytes = 64 * 1024
}
