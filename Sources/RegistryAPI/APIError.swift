import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RegistryCore

/// An error answered in Azure's format: status, `iothub-errorcode` header and the body
/// `{"Message":"ErrorCode:<Name>;<text>","ExceptionMessage":"Tracking ID:…"}`.
public struct APIError: Error, Sendable, Hashable {
    public var status: HTTPResponse.Status
    /// Azure's error code name.
    public var code: String
    public var message: String

    public init(status: HTTPResponse.Status, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// Authentication or authorization failed. The reason is never told to the client.
    public static let unauthorized = APIError(status: .unauthorized, code: "IotHubUnauthorizedAccess", message: "Unauthorized")

    /// 401 with the reason (a scoped policy asking for more than its scope): the caller is
    /// authenticated, so saying why tells it nothing it may not know.
    public static func unauthorized(_ message: String) -> APIError {
        APIError(status: .unauthorized, code: unauthorized.code, message: message)
    }

    public static func invalid(_ message: String) -> APIError { APIError(status: .badRequest, code: "ArgumentInvalid", message: message) }

    public static func format(_ message: String) -> APIError { APIError(status: .badRequest, code: "IotHubFormatError", message: message) }

    public static func tooLarge(_ limit: Int) -> APIError {
        APIError(status: .contentTooLarge, code: "MessageTooLarge", message: "The request body is larger than \(limit) bytes.")
    }

    public init(_ error: RegistryError) {
        self.init(status: HTTPResponse.Status(code: error.code.httpStatus), code: error.code.name, message: error.message)
    }

    /// The response, with a fresh tracking id.
    func response(now: Date = Date()) -> Response {
        var generator = SystemRandomNumberGenerator()
        let tracking = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let body = JSONValue.object([
            "Message": .string("ErrorCode:\(code);\(message)"),
            "ExceptionMessage": .string("Tracking ID:\(tracking)-G:0-TimeStamp:\(Self.timestamp(now))"),
        ])
        var headers = HTTPFields()
        headers[.contentType] = jsonContentType
        headers[.iothubErrorCode] = code
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: CanonicalJSON.encode(body))))
    }

    /// `MM/dd/yyyy HH:mm:ss` in UTC, as Azure's tracking ids carry it.
    static func timestamp(_ date: Date) -> String {
        let t = Timestamp(unixNanoseconds: Int64(date.timeIntervalSince1970 * 1e9)).iso8601  // yyyy-MM-ddTHH:mm:ss.fffffffZ
        let c = Array(t)
        return "\(String(c[5..<7]))/\(String(c[8..<10]))/\(String(c[0..<4])) \(String(c[11..<19]))"
    }
}

let jsonContentType = "application/json; charset=utf-8"

extension HTTPField.Name {
    static let iothubErrorCode = HTTPField.Name("iothub-errorcode")!
    static let requestId = HTTPField.Name("x-ms-request-id")!
    static let clientRequestId = HTTPField.Name("x-ms-client-request-id")!
    static let legacyRequestId = HTTPField.Name("Request-Id")!
}
