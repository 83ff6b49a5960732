import Glibc

/// Whether curl will send a URL through a proxy named in the environment, in which case the
/// proxy resolves the URL's host (and curl the proxy's): the client must not insist on
/// resolving a name the proxy may know and local DNS may not.
///
/// Reads the variables curl reads (lower case `http_proxy`, as curl ignores `HTTP_PROXY`
/// for fear of CGI's HTTP_* headers). `no_proxy` is not weighed: a host it excludes is
/// resolved by curl, on its helper thread.
enum ProxyEnvironment {
    static func proxies(_ url: String) -> Bool {
        let variables: [String]
        if ASCII.equalsIgnoringCase(url.utf8.prefix(6), "https:") {
            variables = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
        } else {
            variables = ["http_proxy", "all_proxy", "ALL_PROXY"]
        }
        return variables.contains { name in
            guard let value = getenv(name) else { return false }
            return value.pointee != 0
        }
    }
}
