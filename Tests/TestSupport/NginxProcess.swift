import Foundation

/// A real nginx (Debian's), its master in the foreground (`daemon off`), serving one TLS
/// site on 127.0.0.1 with `ssl_stapling_file`: nginx reads that file when it starts and when
/// it reloads, never in between. Everything it writes (pid, logs, temporary directories)
/// stays under `directory`.
public final class NginxProcess {
    public let directory: String
    public let port: UInt16
    public let configPath: String
    public let pidPath: String
    public let errorLogPath: String
    private let master: NginxMaster

    /// Writes the configuration and starts nginx. `certificate` is a bundle holding the
    /// leaf, its issuer (nginx looks for it in the chain before it staples) and the key;
    /// its staple file must exist and parse, or nginx refuses to start.
    public init(directory: String, certificate: String, serverName: String, port: UInt16 = freeLoopbackPort()) throws {
        self.directory = directory
        self.port = port
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        configPath = "\(directory)/nginx.conf"
        pidPath = "\(directory)/nginx.pid"
        errorLogPath = "\(directory)/error.log"
        master = NginxMaster(configPath: configPath, directory: directory, errorLogPath: errorLogPath, pidPath: pidPath,
                             port: port)
        // Run as root, nginx would switch its workers to "nobody", which needs nothing here:
        // the master reads the certificate and the staple before it forks them.
        try """
        daemon off;
        pid \(pidPath);
        error_log \(errorLogPath) info;
        events { worker_connections 64; }
        http {
            access_log off;
            client_body_temp_path \(directory)/body;
            proxy_temp_path \(directory)/proxy;
            fastcgi_temp_path \(directory)/fastcgi;
            uwsgi_temp_path \(directory)/uwsgi;
            scgi_temp_path \(directory)/scgi;
            server {
                listen 127.0.0.1:\(port) ssl;
                server_name \(serverName);
                ssl_certificate \(certificate);
                ssl_certificate_key \(certificate);
                ssl_stapling on;
                ssl_stapling_file \(certificate).ocsp;
                return 200 "ok\\n";
            }
        }

        """.write(toFile: configPath, atomically: true, encoding: .utf8)
        try start()
    }

    deinit { stop() }

    /// The words of `nginx -s reload` for this instance (`-e`: nginx opens its compiled-in
    /// error log before it reads the configuration otherwise).
    public var reloadArguments: [String] {
        ["nginx", "-s", "reload", "-c", configPath, "-p", directory + "/", "-e", errorLogPath]
    }

    /// The master's pid: unchanged across reloads.
    public var masterProcessIdentifier: Int32? { master.processIdentifier }

    public var errorLog: String { (try? String(contentsOfFile: errorLogPath, encoding: .utf8)) ?? "" }

    /// Reloads seen in the error log ("reconfiguring", at notice level).
    public var reloadCount: Int { errorLog.components(separatedBy: "signal 1 (SIGHUP) received").count - 1 }

    private func start() throws { try master.start() }

    /// SIGQUIT (graceful), then SIGKILL if it does not go; workers follow their master.
    public func stop() { master.stop() }

    /// What a TLS client asking for `serverName` with `status_request` hears about the staple.
    public func stapleSeen(serverName: String) throws -> StapleSeenByClient {
        try StapleSeenByClient.ask(port: port, serverName: serverName)
    }
}
