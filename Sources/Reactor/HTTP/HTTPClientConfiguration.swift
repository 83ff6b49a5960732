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
        /// How URL host names are resolved (DNS servers, timeouts, the answer cache).
        public var nameResolution: NameResolver.Configuration

        public init(userAgent: String? = nil, maxConcurrentTransfers: Int = 8,
                    maxConnectionsPerHost: Int = 4, maxTotalConnections: Int = 16,
                    maxCachedConnections: Int = 16, maxRedirects: Int = 3,
                    idleHandlePoolSize: Int = 8,
                    nameResolution: NameResolver.Configuration = NameResolver.Configuration()) {
            self.userAgent = userAgent
            self.maxConcurrentTransfers = maxConcurrentTransfers
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.maxTotalConnections = maxTotalConnections
            self.maxCachedConnections = maxCachedConnections
            self.maxRedirects = maxRedirects
            self.idleHandlePoolSize = idleHandlePoolSize
            self.nameResolution = nameResolution
        }
    }
}
