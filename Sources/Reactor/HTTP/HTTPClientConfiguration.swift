import Glibc

extension HTTPClient {
    /// Limits and identity shared by every transfer of one client.
    public struct Configuration: Sendable {
        /// Sent as User-Agent; nil sends none.
        public var userAgent: String?
        /// Transfers handed to curl at once; later ones wait in the client's queue, where they
        /// cost a few hundred bytes each and no curl handle.
        public var maxConcurrentTransfers: Int
        /// Open connections to one host (CURLMOPT_MAX_HOST_CONNECTIONS); transfers beyond it
        /// wait inside curl for a free connection.
        public var maxConnectionsPerHost: Int
        /// Open connections in total (CURLMOPT_MAX_TOTAL_CONNECTIONS).
        public var maxTotalConnections: Int
        /// Idle connections kept for reuse (CURLMOPT_MAXCONNECTS).
        public var maxCachedConnections: Int
        /// Redirects followed before `.tooManyRedirects`.
        public var maxRedirects: Int
        /// Finished easy handles kept for the next transfers instead of being freed.
        public var idleHandlePoolSize: Int
        /// A PEM file of the CA certificates https servers are checked against (CURLOPT_CAINFO);
        /// nil keeps libcurl's built-in bundle (Debian: /etc/ssl/certs/ca-certificates.crt).
        public var trustedCAFile: String?
        /// A directory of hashed CA certificates (`openssl rehash`) checked as well
        /// (CURLOPT_CAPATH); nil keeps libcurl's built-in one (Debian: /etc/ssl/certs).
        public var trustedCADirectory: String?
        /// How URL host names are resolved (DNS servers, timeouts, the answer cache).
        public var nameResolution: NameResolver.Configuration
        /// The proxy requests go through (by default the one the environment names).
        public var proxy: ProxySetting

        public init(userAgent: String? = nil, maxConcurrentTransfers: Int = 8,
                    maxConnectionsPerHost: Int = 4, maxTotalConnections: Int = 16,
                    maxCachedConnections: Int = 16, maxRedirects: Int = 3,
                    idleHandlePoolSize: Int = 8,
                    trustedCAFile: String? = environmentPath("SSL_CERT_FILE"),
                    trustedCADirectory: String? = environmentPath("SSL_CERT_DIR"),
                    nameResolution: NameResolver.Configuration = NameResolver.Configuration(),
                    proxy: ProxySetting = .environment) {
            self.userAgent = userAgent
            self.maxConcurrentTransfers = maxConcurrentTransfers
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.maxTotalConnections = maxTotalConnections
            self.maxCachedConnections = maxCachedConnections
            self.maxRedirects = maxRedirects
            self.idleHandlePoolSize = idleHandlePoolSize
            self.nameResolution = nameResolution
            self.trustedCAFile = trustedCAFile
            self.trustedCADirectory = trustedCADirectory
            self.proxy = proxy
        }

        /// A non-empty environment variable. Debian's libcurl ignores OpenSSL's SSL_CERT_FILE
        /// and SSL_CERT_DIR (its built-in bundle wins), yet they are where operators and
        /// OpenSSL's own tools put a private CA; the defaults honour them, each replacing only
        /// its own built-in location, as in OpenSSL.
        public static func environmentPath(_ name: String) -> String? {
            guard let value = getenv(name), value.pointee != 0 else { return nil }
            return String(cString: value)
        }
    }
}
