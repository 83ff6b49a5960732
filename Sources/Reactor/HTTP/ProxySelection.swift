import Glibc

/// Which proxy a client sends its requests through.
public enum ProxySetting: Equatable, Sendable {
    /// The standard variables, as curl reads them: `http_proxy` for http URLs (lower case
    /// only: CGI puts request headers in HTTP_*), `https_proxy`/`HTTPS_PROXY` for https,
    /// then `all_proxy`/`ALL_PROXY`; `no_proxy`/`NO_PROXY` exempts hosts.
    case environment
    /// Never a proxy, whatever the environment says.
    case none
    /// This HTTP proxy for http and https URLs alike; `no_proxy` still exempts hosts.
    case proxy(ProxyURL)
}

/// Where one hop of a transfer connects: straight to the URL's host, or to a proxy. The
/// client decides this itself and tells curl (CURLOPT_PROXY, with CURLOPT_NOPROXY empty), so
/// curl never consults the environment on its own and the client knows which host to
/// resolve: the proxy's, not the target's (in a proxied network the target's name may not
/// resolve at all; it is the proxy's business).
enum ProxyRoute: Equatable {
    case direct
    /// Through `proxy`.
    case proxy(ProxyURL)
    /// Through a proxy named in the environment that is no plain http URL (`https://...`,
    /// `socks5h://...`): handed to curl as it is, which resolves what it needs itself.
    case unparsedProxy(String)

    /// The route for `url` under `setting`; `bypassesProxy` forces a direct one.
    static func choose(for url: String, setting: ProxySetting, bypassesProxy: Bool) -> ProxyRoute {
        guard !bypassesProxy else { return .direct }
        let route: ProxyRoute
        switch setting {
        case .none:
            return .direct
        case .proxy(let proxy):
            route = .proxy(proxy)
        case .environment:
            guard let value = environmentProxy(for: url) else { return .direct }
            if let proxy = try? ProxyURL(parsing: value) {
                route = .proxy(proxy)
            } else {
                route = .unparsedProxy(value)
            }
        }
        if let endpoint = URLEndpoint(url: url), NoProxyList.fromEnvironment().exempts(host: endpoint.host) {
            return .direct
        }
        return route
    }

    /// The proxy variable curl would use for `url`, if one is set and not empty.
    static func environmentProxy(for url: String) -> String? {
        let names = ASCII.equalsIgnoringCase(url.utf8.prefix(6), "https:")
            ? ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
            : ["http_proxy", "all_proxy", "ALL_PROXY"]
        for name in names {
            if let value = getenv(name), value.pointee != 0 { return String(cString: value) }
        }
        return nil
    }
}
