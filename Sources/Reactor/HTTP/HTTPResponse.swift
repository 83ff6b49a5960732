/// A complete response: the final one when redirects were followed.
public struct HTTPResponse: Sendable {
    /// The URL the request was made for.
    public let url: String
    /// The URL the response came from (differs from `url` after redirects).
    public let finalURL: String
    public let statusCode: Int
    /// The Content-Type field value, if the response had one.
    public let contentType: String?
    /// The Cache-Control field value; several fields are joined with ", ".
    public let cacheControl: String?
    public let body: [UInt8]

    public init(url: String, finalURL: String, statusCode: Int, contentType: String?,
                cacheControl: String?, body: [UInt8]) {
        self.url = url
        self.finalURL = finalURL
        self.statusCode = statusCode
        self.contentType = contentType
        self.cacheControl = cacheControl
        self.body = body
    }
}
