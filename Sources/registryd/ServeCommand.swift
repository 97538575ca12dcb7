import ArgumentParser
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import RegistryAPI
import RegistryCore
import RegistryDelivery
import ServiceLifecycle
import UnixSignals

/// `registryd serve`: the daemon. Opens the data directory for writing, creates the shared
/// access policies and TLS material on first start, and serves the registry API until SIGTERM
/// or SIGINT, then stops accepting, finishes in-flight requests and drains the writer.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the registry daemon.")

    // Every option may also come from the environment or the `server` key of the configuration
    // file (ServeSettings); none has a default here, so "not given" is visible.
    @Option(name: .long, help: "The data directory (default ./data; REGISTRYD_DATA_DIR).")
    var dataDir: String?

    @Option(help: "Address to listen on, HOST:PORT; port 0 picks a free one (default 127.0.0.1:8443; REGISTRYD_LISTEN).")
    var listen: String?

    @Option(help: "The host name SAS tokens must name (default localhost:PORT; REGISTRYD_HOST_NAME); recorded in the data directory.")
    var hostName: String?

    @Option(help: "The hub name, fixed at first start (default registryd; REGISTRYD_HUB_NAME).")
    var hubName: String?

    @Option(help: "The storage backend: a postgres://… URL (REGISTRYD_STORAGE_URL; file: storage); default LMDB in --data-dir.")
    var storage: String?

    @Option(help: "JSON configuration file (REGISTRYD_CONFIG).")
    var config: String?

    @Option(help: "PEM certificate chain to serve, with --tls-key (REGISTRYD_TLS_CERT).")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert (REGISTRYD_TLS_KEY).")
    var tlsKey: String?

    @Flag(inversion: .prefixedNo, help: "Serve plain HTTP, behind a TLS-terminating proxy only (REGISTRYD_PLAIN_HTTP).")
    var plainHttp: Bool?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default info; REGISTRYD_LOG_LEVEL).")
    var logLevel: String?

    // Settings of the configuration file that flags may also set (SettingsOverlay).
    @Option(help: "Modules per device (REGISTRYD_MAX_MODULES_PER_DEVICE; file: limits.maxModulesPerDevice).")
    var maxModulesPerDevice: Int?
    @Option(help: "Devices plus modules at most (REGISTRYD_MAX_IDENTITIES; file: limits.maxIdentities).")
    var maxIdentities: Int?
    @Option(help: "Request body limit in bytes (REGISTRYD_MAX_REQUEST_BODY_BYTES; file: limits.maxRequestBodyBytes).")
    var maxRequestBodyBytes: Int?
    @Option(help: "Serve /metrics without a token: true or false (REGISTRYD_METRICS_OPEN; file: metrics.open).")
    var metricsOpen: String?
    @Option(help: "Job container roots, colon-separated (REGISTRYD_JOB_ROOTS; file: jobs.roots).")
    var jobRoots: String?
    @Option(help: "Registry reads per second (REGISTRYD_THROTTLE_REGISTRY_READS; file: throttling.registryReads).")
    var throttleRegistryReads: Double?
    @Option(help: "Registry writes per second (REGISTRYD_THROTTLE_REGISTRY_WRITES; file: throttling.registryWrites).")
    var throttleRegistryWrites: Double?
    @Option(help: "Bulk and job requests per second (REGISTRYD_THROTTLE_BULK; file: throttling.bulk).")
    var throttleBulk: Double?
    @Option(help: "Queries per second (REGISTRYD_THROTTLE_QUERIES; file: throttling.queries).")
    var throttleQueries: Double?
    @Option(help: "Device authentication checks and connection reports per second (REGISTRYD_THROTTLE_DEVICE_AUTH; file: throttling.deviceAuth).")
    var throttleDeviceAuth: Double?

    var overlayFlags: [String: String] {
        var out: [String: String] = [:]
        if let maxModulesPerDevice { out["max-modules-per-device"] = String(maxModulesPerDevice) }
        if let maxIdentities { out["max-identities"] = String(maxIdentities) }
        if let maxRequestBodyBytes { out["max-request-body-bytes"] = String(maxRequestBodyBytes) }
        if let metricsOpen { out["metrics-open"] = metricsOpen }
        if let jobRoots { out["job-roots"] = jobRoots }
        if let throttleRegistryReads { out["throttle-registry-reads"] = String(throttleRegistryReads) }
        if let throttleRegistryWrites { out["throttle-registry-writes"] = String(throttleRegistryWrites) }
        if let throttleBulk { out["throttle-bulk"] = String(throttleBulk) }
        if let throttleQueries { out["throttle-queries"] = String(throttleQueries) }
        if let throttleDeviceAuth { out["throttle-device-auth"] = String(throttleDeviceAuth) }
        return out
    }

    var flags: ServeSettings.Flags {
        ServeSettings.Flags(
            dataDir: dataDir,
            listen: listen,
            hostName: hostName,
            hubName: hubName,
            tlsCert: tlsCert,
            tlsKey: tlsKey,
            plainHttp: plainHttp,
            logLevel: logLevel
        )
    }

    func run() async throws {
        // Log lines are written by a background thread, never by the request that logs them.
        let logOutput = BackgroundLogOutput()
        BackgroundLogOutput.bootstrap(logOutput)
        defer { logOutput.flush() }
        let environment = ProcessInfo.processInfo.environment
        let configPath = config ?? environment[ServeSettings.configVariable].flatMap { $0.isEmpty ? nil : $0 }
        let fileJSON = try configPath.map(RegistryConfiguration.json(file:)) ?? .object([:])
        let merged = try SettingsOverlay.apply(to: fileJSON, environment: environment, flags: overlayFlags)
        let file = try RegistryConfiguration(json: merged, source: configPath ?? "the environment and flags")
        let serve = try ServeSettings.resolve(flags: flags, environment: environment, file: file.server)
        var logger = Logger(label: "registryd")
        logger.logLevel = Logger.Level(rawValue: serve.logLevel) ?? .info
        for name in ServeSettings.unknownVariables(environment) {
            logger.warning("ignoring an environment variable that names no setting", metadata: ["variable": "\(name)"])
        }
        let address = try ListenAddress(serve.listen)
        // Before the data directory is opened (or created): a job root overlapping it is refused.
        try file.jobs.checkApart(fromDataDirectory: serve.dataDir)
        let settings = file
        let directory = DataDirectory(path: serve.dataDir)
        let metrics = RegistryMetrics()
        let selection = try StorageSelection.resolve(flag: storage, environment: environment, file: file.storage)
        let store = try await StoreOpening.daemon(
            selection,
            directory: directory,
            limits: settings.limits,
            writer: settings.writer,
            metrics: metrics,
            logger: logger
        )

        let hub = try await settleHubName(store, requested: serve.hubName)
        let policies = try await store.ensureBuiltInPolicies()
        let delivery = DeliveryService(store: store, hubName: hub, configuration: settings.delivery, logger: logger)
        try await delivery.prepareCursors()
        let authenticator = ServiceAuthenticator(hostName: serve.hostName ?? "localhost:\(address.port)", policies: policies)
        let jobs = JobService(store: store, configuration: settings.jobs, logger: logger)
        try await jobs.recoverInterrupted(now: SystemClock().now())
        let readiness = Readiness()
        let accessLog = AccessLogSummary()
        let router = buildRouter(
            store: store,
            authenticator: authenticator,
            configuration: settings.api,
            delivery: delivery,
            readiness: readiness,
            metrics: metrics,
            accessLog: accessLog,
            jobs: jobs
        )
        let notifier = await SystemdNotifier.fromEnvironment(environment, logger: logger)

        let server: HTTPServerBuilder
        let certificatePath: String?
        var serving: ServingCertificate?
        var renewal: CertificateRenewal?
        let limits = settings.api.connections
        if serve.plainHttp {
            server = .registry(limits: limits, tls: nil)
            certificatePath = nil
            logger.warning("serving plain HTTP: put a TLS-terminating proxy in front")
        } else if let tlsCert = serve.tlsCert, let tlsKey = serve.tlsKey {
            certificatePath = tlsCert
            serving = try ServingCertificate(certificatePath: tlsCert, keyPath: tlsKey)
            server = .registry(limits: limits, tls: try serving!.serverConfiguration())
        } else {
            let paths = LocalCertificateAuthority.Paths(dataDirectory: directory.path)
            // Issued again at start when due, or when it does not name the configured names.
            let names = try ServerNames(hostName: serve.hostName, extra: settings.tls.subjectAlternativeNames)
            if case .issued(let reason) = try LocalCertificateAuthority.ensure(paths, names: names) {
                logger.info("issued the server certificate with the local CA", metadata: ["tls.reason": "\(reason)"])
            }
            logger.info("TLS with the local CA; clients trust it with REQUESTS_CA_BUNDLE", metadata: ["tls.ca": "\(paths.caCertificate)"])
            certificatePath = paths.serverCertificate
            serving = try ServingCertificate(certificatePath: paths.serverCertificate, keyPath: paths.serverKey)
            renewal = CertificateRenewal(paths: paths, names: names, serving: serving!, logger: logger)
            server = .registry(limits: limits, tls: try serving!.serverConfiguration())
        }

        if let certificatePath, let expiry = LocalCertificateAuthority.expiry(ofCertificateAt: certificatePath) {
            metrics.setCertificateExpiry(expiry)
            let days = Int(expiry.timeIntervalSinceNow / 86400)
            if days < 30 {
                logger.warning(
                    "the served TLS certificate expires soon",
                    metadata: ["tls.certificate": "\(certificatePath)", "tls.days_left": "\(days)"]
                )
            }
        }
        let explicitHost = serve.hostName
        let serverLogger = logger
        let app = Application(
            router: router,
            server: server,
            configuration: ApplicationConfiguration(
                address: .hostname(address.host, port: address.port),
                serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections)
            ),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? address.port
                let name = explicitHost ?? "localhost:\(port)"
                authenticator.setHostName(name)
                try? await store.setMetaString(MetaKey.hostName, name)
                readiness.setListening(true)
                serverLogger.info(
                    "listening",
                    metadata: ["listen.host": "\(address.host)", "listen.port": "\(port)", "sas.host": "\(name)", "hub": "\(hub)"]
                )
                // Only now does the port accept connections: tell systemd (Type=notify).
                await notifier?.notify("READY=1\nSTATUS=serving \(hub) on \(address.host):\(port)")
            },
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: StoreService(store: store, logger: logger)),
                    .init(service: delivery),
                    .init(service: StorageRecoveryService(store: store, interval: .seconds(2), logger: logger)),
                    // Another node's policy change (PostgreSQL): picked up within a second.
                    .init(service: PolicyRefreshService(store: store, authenticator: authenticator, enabled: selection != .lmdb, logger: logger)),
                    .init(service: AccessLogService(summary: accessLog, interval: .seconds(60), logger: logger)),
                    .init(service: ReloadService(configPath: configPath, delivery: delivery, certificate: serving, metrics: metrics, logger: logger)),
                    // Checks the generated certificate hourly (a no-op with an operator's).
                    .init(
                        service: CertificateRenewalService(
                            renewal: renewal,
                            interval: .seconds(3600),
                            onRenewed: metrics.setCertificateExpiry,
                            logger: logger
                        )
                    ),
                    // Windows entering their last days: one notice each, for routes.
                    .init(
                        service: CredentialExpiryService(
                            notices: CredentialExpiryNotices(store: store, configuration: settings.credentials, logger: logger),
                            interval: settings.credentials.checkInterval,
                            logger: logger
                        )
                    ),
                    // Before the listener: shut down after it has drained, before the store closes.
                    .init(service: jobs),
                    .init(service: app),
                    // Last: the first to see a shutdown, so STOPPING=1 goes out at once.
                    .init(
                        service: SystemdService(
                            notifier: notifier,
                            watchdog: watchdogInterval(environment, pid: getpid()),
                            // Alive, not ready: a full disk keeps /readyz false but must not get
                            // the daemon restarted (it recovers by itself), so it is not part of
                            // this; a stuck writer is (only a restart helps).
                            healthy: { store.isLive },
                            logger: logger
                        )
                    ),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        logger.info("stopped")
    }

    /// The hub name is chosen at first start and never changes.
    func settleHubName(_ store: any RegistryBackend, requested hubName: String?) async throws -> String {
        if let stored = try await store.metaString(MetaKey.hubName) {
            if let hubName, hubName != stored {
                throw ValidationError("the hub name was fixed at first start as '\(stored)'; --hub-name '\(hubName)' cannot change it")
            }
            return stored
        }
        let name = hubName ?? "registryd"
        try await store.setMetaString(MetaKey.hubName, name)
        return name
    }
}

/// Keeps the store open while the daemon runs and closes it last (ServiceGroup shuts services
/// down in reverse order, so the HTTP server has drained by then).
struct StoreService: Service {
    let store: any RegistryBackend
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("draining the writer")
        store.close()
    }
}

/// While the storage is full, tries a tiny write every `interval`; the first that succeeds clears
/// the full state (the writer logs it), so `/readyz` and writes come back without a restart.
struct StorageRecoveryService: Service {
    let store: any RegistryBackend
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await everyInterval(interval) {
            if store.health.isFull, store.isAcceptingWrites { _ = await store.probeStorage() }
        }
    }
}

/// With several nodes on one database (PostgreSQL), a policy added, changed, rotated or removed
/// through another node reaches this node's authenticator here: the stored generation is read
/// every second and a newer set installed (an older or equal one is ignored, so this never
/// undoes a change this node made itself).
struct PolicyRefreshService: Service {
    let store: any RegistryBackend
    let authenticator: ServiceAuthenticator
    let enabled: Bool
    let logger: Logger

    func run() async throws {
        guard enabled else {
            // One node owns its store's policies: nothing to refresh (a service may not end early).
            try? await gracefulShutdown()
            return
        }
        await everyInterval(.seconds(1)) {
            do {
                guard let generation = try await store.metaString(MetaKey.policyGeneration).flatMap({ Int64($0) }) else { return }
                authenticator.setPolicies(PolicySnapshot(policy: nil, policies: try await store.policies(), generation: generation))
            } catch {
                logger.debug("policy refresh failed; retrying", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// SIGHUP re-reads the configuration file and hands the new routes and endpoints to the router.
/// A file that no longer validates is refused (logged) and the running configuration stays.
struct ReloadService: Service {
    let configPath: String?
    let delivery: DeliveryService
    let certificate: ServingCertificate?
    let metrics: RegistryMetrics
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            // The served certificate first: new handshakes use it, open connections carry on.
            if let certificate {
                do {
                    if let expiry = try certificate.reload() { metrics.setCertificateExpiry(expiry) }
                    logger.info("TLS certificate reloaded", metadata: ["tls.certificate": "\(certificate.certificatePath)"])
                } catch {
                    logger.error("TLS certificate reload refused; keeping the running one", metadata: ["error": "\(error)"])
                }
            }
            guard let configPath else {
                logger.info("SIGHUP without --config: no configuration to reload")
                continue
            }
            do {
                let settings = try RegistryConfiguration(file: configPath)
                delivery.reload(settings.delivery)
                logger.info("configuration reloaded", metadata: ["config": "\(configPath)"])
            } catch {
                logger.error("configuration reload refused; keeping the running one", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// `HOST:PORT`, with `[v6]:PORT` for IPv6.
struct ListenAddress {
    var host: String
    var port: Int

    init(_ text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen must be HOST:PORT, got '\(text)'")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ValidationError("--listen must be HOST:PORT, got '\(text)'") }
        self.host = host
        self.port = port
    }
}
