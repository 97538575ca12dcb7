import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL

/// Hummingbird's HTTP/1.1 child channel with the connection guard around it (see
/// `ConnectionGuard`) and the HTTP decoder's header limit lowered to
/// `ConnectionLimits.decoderHeaderBytes`.
struct GuardedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let limits: ConnectionLimits
    let tls: Bool

    init(responder: @escaping HTTPChannelHandler.Responder, limits: ConnectionLimits, tls: Bool) {
        self.limits = limits
        self.tls = tls
        base = HTTP1Channel(
            responder: responder,
            configuration: .init(
                additionalChannelHandlers: [RequestProgressHandler()],
                idleTimeout: nil,
                httpDecoderConfiguration: .init(
                    maxHeaderFieldSize: ConnectionLimits.decoderHeaderBytes,
                    maxHeaderListSize: ConnectionLimits.decoderHeaderBytes
                )
            )
        )
    }

    var responder: HTTPChannelHandler.Responder { base.responder }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // Before the HTTP codec (and after TLS, when TLSChannel wraps this channel).
            try channel.pipeline.syncOperations.addHandler(ConnectionGuard(limits: limits, tls: tls, logger: logger))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// The registry's HTTP/1.1 server: guarded connections, over TLS unless `tls` is `nil`.
    public static func registry(limits: ConnectionLimits, tls: TLSConfiguration?) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            let channel = GuardedHTTP1Channel(responder: responder, limits: limits, tls: tls != nil)
            guard let tls else { return channel }
            return try TLSChannel(channel, tlsConfiguration: tls)
        }
    }
}
