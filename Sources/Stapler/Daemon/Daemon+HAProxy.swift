import Reactor

/// Pushing new staples into the HAProxy instances that serve each certificate.
extension Daemon {
    /// Creates a client per configured socket and shuts down those no longer configured.
    /// Clients that stay keep their queue and connection and take the current keepalive.
    func configureHAProxyClients() {
        let wanted = Set(options.allHAProxySockets)
        for (socket, client) in haproxy where !wanted.contains(socket) {
            client.shutDown()
            haproxy[socket] = nil
        }
        for client in haproxy.values where client.configuration.keepalive != options.haproxySocketKeepalive {
            client.setKeepalive(options.haproxySocketKeepalive)
        }
        var configuration = HAProxySocketClient.Configuration()
        configuration.keepalive = options.haproxySocketKeepalive
        for socket in options.allHAProxySockets where haproxy[socket] == nil {
            haproxy[socket] = HAProxySocketClient(loop: loop, socket: socket, configuration: configuration) {
                [unowned self] event in
                switch event {
                case .connected(let socket):
                    self.logger.info("HAProxy \(socket): connected")
                case .failed(let error, let retryIn):
                    self.logger.error("\(error); retrying in \(retryIn.components.seconds) s")
                }
            }
        }
    }

    /// Hands a new staple to every HAProxy that serves this certificate.
    func push(_ staple: [UInt8], for certificate: TrackedCertificate) {
        guard certificate.location < options.certificateLocations.count else { return }
        for socket in options.certificateLocations[certificate.location].haproxySockets {
            guard let client = haproxy[socket] else { continue }
            pendingPushes += 1
            certificate.pendingPushes += 1
            let path = certificate.path
            client.push(staple: staple, certificate: path) { [weak self, weak certificate] result in
                guard let self else { return }
                self.pendingPushes -= 1
                certificate?.pendingPushes -= 1
                self.statistics.record(push: result)
                switch result {
                case .updated, .installed:
                    self.logger.info("\(path): staple pushed to HAProxy \(socket)"
                                     + (result == .installed ? " (new staple slot)" : ""))
                case .superseded, .cancelled:
                    break
                case .rejected(let answer):
                    self.logger.error("\(path): HAProxy \(socket) refused the staple: \(answer)")
                case .certificateNotServed:
                    self.logger.warning("\(path): HAProxy \(socket) does not serve this certificate")
                case .stapleTooLarge(let limit):
                    self.logger.error("\(path): staple too large for HAProxy \(socket) (limit \(limit) bytes)")
                case .queueFull(let limit):
                    self.logger.error("\(path): HAProxy \(socket) has \(limit) staples waiting; dropped this one")
                }
                self.finishOneOffIfDone()
            }
        }
    }
}
