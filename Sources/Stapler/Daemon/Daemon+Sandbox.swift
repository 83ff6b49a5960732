import Reactor

/// The daemon's side of its confinement: the TCP layer once the first certificates have
/// named the responders' ports, one line per port met later, and SIGHUP trimmed to the
/// ruleset.
extension Daemon {
    /// Responder and CA Issuers URLs of a certificate just read. The first ones schedule the
    /// TCP layer for when the load queue drains (`certificatesLoaded`): certificates are read
    /// a slice per pass of the loop, and every certificate of the same scan or burst of events
    /// (the whole first scan at start) adds its ports first. A daemon started on an empty
    /// directory closes the network when its first certificates have arrived.
    func sandboxSaw(_ urls: [String]) {
        guard let sandbox, !urls.isEmpty else { return }
        for line in sandbox.urlsSeen(urls) { logger.error(line) }
        _ = sandbox.scheduleNetworkClosing()
    }

    /// Every certificate queued so far is read: the TCP layer goes on if one named a port.
    func sandboxCertificatesLoaded() {
        if let sandbox, sandbox.networkClosingScheduled { closeSandboxNetwork() }
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
