import Reactor

/// The daemon's side of its confinement: the TCP layer once the first scan has named the
/// responders' ports, one line per port met later, and SIGHUP trimmed to the ruleset.
extension Daemon {
    /// Responder and CA Issuers URLs of a certificate just read.
    func sandboxSaw(_ urls: [String]) {
        guard let sandbox else { return }
        for line in sandbox.urlsSeen(urls) { logger.error(line) }
    }

    /// After a full scan: the first one closes the network to every port not seen so far.
    func closeSandboxNetwork() {
        guard let result = sandbox?.closeNetwork() else { return }
        if result.ok { logger.info(result.line) } else { logger.warning(result.line) }
    }

    /// A reloaded configuration without the parts the ruleset set at start cannot serve,
    /// each refused with one line.
    func admitToSandbox(_ fresh: Options) -> Options {
        guard let sandbox else { return fresh }
        let (admitted, refusals) = sandbox.admit(fresh, running: options)
        for line in refusals { logger.error(line) }
        return admitted
    }
}
