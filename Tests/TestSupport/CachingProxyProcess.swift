import Foundation

/// A real shared HTTP cache: Debian's nginx as a forward proxy with `proxy_cache`, on
/// 127.0.0.1, the way a site would run one per data centre in front of the CAs' responders.
///
/// nginx takes a proxy's absolute-form requests (`GET http://responder/... HTTP/1.1`) and
/// passes them to the host they name; it caches a 200 for as long as the responder's
/// `Cache-Control: max-age` says (no `proxy_cache_valid`: the responder decides), keyed by
/// the whole URL, and `proxy_cache_lock` makes simultaneous misses for one URL wait for the
/// first instead of all going upstream. Its access log records the cache status of every
/// request (HIT, MISS, EXPIRED, ...), so tests can count what the cache absorbed.
public final class CachingProxyProcess {
    public let directory: String
    public let port: UInt16
    public var url: String { "http://127.0.0.1:\(port)" }
    public let configPath: String
    private let pidPath: String
    private let errorLogPath: String
    private let accessLogPath: String
    private let master: NginxMaster

    public init(directory: String, port: UInt16 = freeLoopbackPort()) throws {
        self.directory = directory
        self.port = port
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        configPath = "\(directory)/nginx.conf"
        pidPath = "\(directory)/nginx.pid"
        errorLogPath = "\(directory)/error.log"
        accessLogPath = "\(directory)/access.log"
        master = NginxMaster(configPath: configPath, directory: directory, errorLogPath: errorLogPath, pidPath: pidPath,
                             port: port)
        // $http_host: the Host field curl sends with an absolute-form request (host:port);
        // an IP literal there needs no `resolver`. A site's cache names CA hosts and would
        // set `resolver` and allow only its own networks.
        // Workers write the cache under the test's private directory: they run as whoever
        // runs the test (as root, nginx would otherwise switch them to "nobody").
        let user = getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) } ?? "root"
        try """
        user \(user);
        daemon off;
        pid \(pidPath);
        error_log \(errorLogPath) info;
        events { worker_connections 256; }
        http {
            log_format cache '$upstream_cache_status $request_method $scheme://$http_host$request_uri';
            access_log \(accessLogPath) cache;
            client_body_temp_path \(directory)/body;
            proxy_temp_path \(directory)/proxy;
            fastcgi_temp_path \(directory)/fastcgi;
            uwsgi_temp_path \(directory)/uwsgi;
            scgi_temp_path \(directory)/scgi;
            proxy_cache_path \(directory)/cache levels=1:2 keys_zone=ocsp:1m max_size=64m inactive=7d use_temp_path=off;
            server {
                listen 127.0.0.1:\(port);
                location / {
                    proxy_pass http://$http_host$request_uri;
                    proxy_cache ocsp;
                    proxy_cache_key $scheme://$http_host$request_uri;
                    proxy_cache_lock on;
                    proxy_cache_lock_timeout 10s;
                }
            }
        }

        """.write(toFile: configPath, atomically: true, encoding: .utf8)
        try start()
    }

    deinit { stop() }

    public var isRunning: Bool { master.processIdentifier != nil }

    public var errorLog: String { (try? String(contentsOfFile: errorLogPath, encoding: .utf8)) ?? "" }

    /// The cache status of every request so far, in order: HIT, MISS, EXPIRED, ... ("-" for
    /// requests that did not use the cache).
    public var cacheStatuses: [String] {
        let text = (try? String(contentsOfFile: accessLogPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    public func start() throws { try master.start() }

    /// SIGQUIT (graceful), then SIGKILL if it does not go; workers follow their master.
    public func stop() { master.stop() }
}
