import Reactor

/// The daemon's side of its confinement: the TCP layer once the first certificates have
/// named the responders' ports, one line per port met later, and SIGHUP trimmed to the
/// ruleset.
extension Daemon {
    /// Responder and CA Issuers URLs of a certificate just read. The first ones schedule the
    /// TCP layer for the end of this turn of the loop, so that every certificate of the same
    /// scan or burst of events (the whole first scan at start) adds its ports first; a daemon
    /// started on an empty directory closes the network when its first certificates arrive.
    func sandboxSaw(_ urls: [String]) {
        guard let sandbox, !urls.isEmpty else { return }
        for line in sandbox.urlsSeen(urls) { logger.error(line) }
        if sandbox.scheduleNetworkClosing() {
            loop.executeSoon { [unowned self] in self.closeSandboxNetwork() }
        }
    }

    /// Just confined: with no responder ports to learn, the TCP layer goes on at once.
    func sandboxConfined() {
        if let sandbox, !sandbox.plan.learnsResponderPorts { closeSandboxNetwork() }
    }

    private func closeSandboxNetwork() {
        guard let result = sandbox?.closeNetwork() else { return }
        if result.ok { logger.info(result.line) } else { logger.warning(result.line) }
    }

    /// A reloaded configuration without the parts the ruleset set at start cannot serve,
    /// each refused with one line.
    func admitToSandbox(_ fresh: Options) -> Options {
        if fresh.sandbox != options.sandbox {
            logger.warning("SIGHUP: turning the sandbox \(fresh.sandbox ? "on" : "off") takes effect at the next start")
        }
        guard let sandbox else { return fresh }
        let (admitted, refusals) = sandbox.admit(fresh, running: options)
        for line in refusals { logger.error(line) }
        return admitted
    }
}
