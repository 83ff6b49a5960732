/// Telling systemd (`Type=notify`) where the daemon stands: ready after the first scan,
/// reloading on SIGHUP, stopping on SIGTERM.
extension Daemon {
    /// A failure is worth a line (the unit would time out waiting for READY=1) but never
    /// stops the daemon.
    func notifyService(_ state: ServiceNotifier.State) {
        guard let serviceNotifier else { return }
        do {
            try serviceNotifier.notify(state)
        } catch {
            logger.warning("cannot notify the service manager: \(error)")
        }
    }
}
