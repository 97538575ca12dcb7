import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOTLS

/// Closes connections that stall at any stage, so a peer cannot hold a connection (and its
/// file descriptor and buffers) by sending slowly or not at all.
///
/// Two handlers share the work. `ConnectionGuard` sits on the raw byte stream (after TLS,
/// before the HTTP codec) and sees the handshake finish and each request's first byte;
/// `RequestProgressHandler` sits after the codec and sees a request's head and end and the end
/// of its response. From those the guard knows the connection's phase and runs one timer for it:
///
/// | phase | timer |
/// |---|---|
/// | TLS handshake not finished | `tlsHandshakeTimeout` |
/// | no request in progress | `idleTimeout` |
/// | bytes of a request, header block not complete | `headerTimeout` |
/// | header block read, body not complete | `bodyTimeout` |
/// | request read, response not finished | none (handlers and event streams run as long as they need) |
///
/// A timer starts when its phase starts and is not restarted by more bytes of the same phase,
/// so dribbling one byte at a time does not keep a connection alive.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum Phase: Equatable {
        case handshake, idle, readingHead, readingBody, responding
    }

    let limits: ConnectionLimits
    let logger: Logger
    private var handshakeDone: Bool
    private var heads = 0
    private var ends = 0
    private var responses = 0
    private var bytesSinceRequestEnd = false
    private(set) var phase: Phase?
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(limits: ConnectionLimits, tls: Bool, logger: Logger) {
        self.limits = limits
        self.handshakeDone = !tls
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        update()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !bytesSinceRequestEnd {
            bytesSinceRequestEnd = true
            update()
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            handshakeDone = true
            update()
        }
        context.fireUserInboundEventTriggered(event)
    }

    // Called by RequestProgressHandler, on the same event loop.
    func requestHeadRead() {
        heads += 1
        update()
    }

    func requestEndRead() {
        ends += 1
        bytesSinceRequestEnd = false
        update()
    }

    func responseEndWritten() {
        responses += 1
        update()
    }

    private var currentPhase: Phase {
        if !handshakeDone { return .handshake }
        if responses < ends { return .responding }
        if heads > ends { return .readingBody }
        return bytesSinceRequestEnd ? .readingHead : .idle
    }

    /// Re-arms the timer only when the phase changes.
    private func update() {
        let next = currentPhase
        guard next != phase, let context else { return }
        phase = next
        timer?.cancel()
        timer = nil
        let limit: Duration? =
            switch next {
            case .handshake: limits.tlsHandshakeTimeout
            case .idle: limits.idleTimeout
            case .readingHead: limits.headerTimeout
            case .readingBody: limits.bodyTimeout
            case .responding: nil
            }
        guard let limit else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: TimeAmount(limit)) {
            loopBound.value.expire(next)
        }
    }

    private func expire(_ expired: Phase) {
        guard phase == expired, let context else { return }
        logger.debug("closing a connection that stalled", metadata: ["connection.phase": "\(expired)"])
        context.close(promise: nil)
    }
}

/// Reports request and response progress to the connection's `ConnectionGuard`, and answers
/// 431 when the HTTP decoder refuses a header block over its hard limit (NIO would otherwise
/// just drop the connection).
final class RequestProgressHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var connectionGuard: ConnectionGuard?

    func handlerAdded(context: ChannelHandlerContext) {
        connectionGuard = try? context.pipeline.syncOperations.handler(type: ConnectionGuard.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: connectionGuard?.requestHeadRead()
        case .end: connectionGuard?.requestEndRead()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { connectionGuard?.responseEndWritten() }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, parserError == .headerOverflow else {
            context.fireErrorCaught(error)
            return
        }
        // The decoder is finished with this connection: answer and close. The body is the
        // Azure error format the router would have used.
        let body = ByteBuffer(
            string:
                #"{"Message":"ErrorCode:RequestHeaderFieldsTooLarge;The request's headers are larger than the registry accepts.","ExceptionMessage":""}"#
        )
        var head = HTTPResponse(status: .init(code: 431, reasonPhrase: "Request Header Fields Too Large"))
        head.headerFields[.contentType] = "application/json; charset=utf-8"
        head.headerFields[.contentLength] = String(body.readableBytes)
        head.headerFields[.connection] = "close"
        head.headerFields[HTTPField.Name("iothub-errorcode")!] = "RequestHeaderFieldsTooLarge"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
    }
}
