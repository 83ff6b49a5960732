import Glibc
import Reactor

/// Finding certificate files and noticing when they change: scans, inotify events, parsing.
extension Daemon {
    // MARK: Scans

    /// Stats every configured path and acts on what changed since the last scan. Cheap for
    /// unchanged files (one stat each, no read).
    func rescanAll() {
        let result = CertificateDiscovery.scan(options.certificateLocations.map(\.path), rules: discoveryRules)
        var seen = Set<FilePath>()
        seen.reserveCapacity(result.files.count)
        let now = UTCTime.now()
        for file in result.files {
            seen.insert(file.path)
            if let certificate = certificates[file.path] {
                certificate.location = file.location
                if certificate.fileStatus != file.status {
                    certificate.fileStatus = file.status
                    load(certificate, changed: true)
                } else if let due = certificate.nextRefresh, due <= now, certificate.timer == nil,
                          !certificate.isFetching, !queue.contains(certificate), !options.oneOff {
                    // A refresh whose timer was lost to a clock jump: catch up.
                    enqueue(certificate)
                }
            } else {
                let certificate = TrackedCertificate(path: file.path, location: file.location, fileStatus: file.status)
                certificates[file.path] = certificate
                load(certificate, changed: false)
            }
        }
        for (path, certificate) in certificates where !seen.contains(path) {
            forget(certificate, reason: "no longer found")
        }
        reportProblems(result.problems)
        updateWatches(result.directories)
    }

    private func reportProblems(_ problems: [FileError]) {
        var current: [FilePath: String] = [:]
        for problem in problems {
            let text = problem.description
            current[problem.path] = text
            if reportedProblems[problem.path] != text { logger.error(text) }
        }
        for path in reportedProblems.keys where current[path] == nil {
            logger.info("\(path): readable again")
        }
        reportedProblems = current
    }

    /// Re-examines one path an inotify event named: new, changed, gone, or unchanged.
    func examine(_ path: FilePath) {
        let status: FileStatus
        do {
            status = try FileSystem.status(path)
        } catch {
            if let certificate = certificates[path] { forget(certificate, reason: "removed") }
            return
        }
        guard status.kind == .regular else { return }
        if let certificate = certificates[path] {
            guard certificate.fileStatus != status else { return }
            certificate.fileStatus = status
            load(certificate, changed: true)
        } else if let location = watchedDirectories[path.directory]?.location {
            let certificate = TrackedCertificate(path: path, location: location, fileStatus: status)
            certificates[path] = certificate
            load(certificate, changed: false)
        }
    }

    /// Parses the file and decides what it needs. A certificate seen for the first time
    /// keeps a staple on disk that is still good ("recycling"); a changed file (replaced,
    /// edited, or just `touch`ed: the operator's way to force a refresh) is fetched at once.
    func load(_ certificate: TrackedCertificate, changed: Bool) {
        let now = UTCTime.now()
        let wasActive = certificate.record != nil
        cancelRefresh(certificate)
        let record: CertificateRecord
        do {
            record = try CertificateBundle.load(path: certificate.path, now: now, issuers: issuers)
        } catch {
            deactivate(certificate, error)
            return
        }
        if certificate.inactiveReason != nil {
            logger.info("\(certificate.path): usable again: \(record.subject)")
            certificate.inactiveReason = nil
        }
        if certificate.record?.certID != record.certID {
            certificate.staple = nil
            certificate.failures = 0
            certificate.lastError = nil
        }
        certificate.record = record
        logger.debug("\(certificate.path): \(record.subject), serial \(record.serialHex), "
                     + "OCSP \(record.ocspURLs.joined(separator: " ")), must-staple \(record.mustStaple)")
        if changed && wasActive {
            logger.info("\(certificate.path): changed on disk, fetching a fresh staple")
            enqueue(certificate, urgent: true)
            return
        }
        if options.recycleStaples, recycle(certificate, record: record, now: now) { return }
        enqueue(certificate)
    }

    /// Serves the staple file already on disk if it verifies and has time left.
    private func recycle(_ certificate: TrackedCertificate, record: CertificateRecord, now: Int64) -> Bool {
        let stapleBytes: [UInt8]?
        do {
            stapleBytes = try StapleFile.read(forCertificate: certificate.path)
        } catch {
            logger.warning("\(error)")
            return false
        }
        guard let stapleBytes else { return false }
        let verified: VerifiedOCSPResponse
        do {
            verified = try OCSPResponseVerifier.verify(stapleBytes, for: record, now: now)
        } catch {
            logger.info("\(StapleFile.path(forCertificate: certificate.path)): not reusable: \(error)")
            return false
        }
        certificate.staple = StapleSummary(verified, fetchedAt: nil, cacheMaxAge: nil)
        guard refreshPolicy.isRecyclable(nextUpdate: verified.nextUpdate, now: now) else { return false }
        if certificate.staple?.isRevoked == true {
            logger.critical("\(certificate.path): \(record.subject) is REVOKED: \(verified.statusDescription)")
        }
        let due = refreshPolicy.nextRefresh(thisUpdate: verified.thisUpdate, nextUpdate: verified.nextUpdate,
                                            fetchedAt: now, cacheMaxAge: nil,
                                            certificateNotAfter: record.notAfter, now: now,
                                            random: randomFraction())
        logger.debug("\(certificate.path): staple on disk is \(verified.statusDescription) until "
                     + "\(UTCTime.format(verified.nextUpdate)), refresh at \(UTCTime.format(due))")
        scheduleRefresh(certificate, at: due, now: now)
        return true
    }

    /// Nothing to staple in this file (any more): say why once, and stop its refreshes.
    private func deactivate(_ certificate: TrackedCertificate, _ error: CertificateBundleError) {
        let text = error.description
        if certificate.inactiveReason != text {
            switch error.reason {
            case .noCertificate, .noEndEntity: logger.debug(text)
            case .noOCSPURL: logger.info(text)
            case .expired, .issuerNotFound: logger.warning(text)
            case .malformed, .unreadable: logger.error(text)
            }
        }
        certificate.inactiveReason = text
        certificate.record = nil
        certificate.staple = nil
        certificate.lastError = nil
        certificate.failures = 0
    }

    /// Drops a certificate that is gone. Its staple file stays where it is.
    func forget(_ certificate: TrackedCertificate, reason: String) {
        cancelRefresh(certificate)
        certificates[certificate.path] = nil
        if certificate.record != nil { logger.info("\(certificate.path): \(reason), forgotten") }
    }

    // MARK: inotify

    /// Keeps one watch per scanned directory, dropping those of directories no longer found.
    func updateWatches(_ directories: [(path: FilePath, location: Int)]) {
        guard let watcher else { return }
        var wanted = Set<FilePath>()
        for (directory, location) in directories {
            wanted.insert(directory)
            if let existing = watchedDirectories[directory] {
                watchedDirectories[directory] = (existing.watch, location)
                continue
            }
            do {
                let watch = try watcher.watch(directory, mask: FileSystemChanges.watchMask)
                watches[watch] = directory
                watchedDirectories[directory] = (watch, location)
            } catch {
                // Out of watches (fs.inotify.max_user_watches) or a directory gone meanwhile:
                // the periodic rescan still covers it.
                if reportedProblems[directory] != error.description {
                    logger.warning("\(error); relying on the periodic rescan")
                    reportedProblems[directory] = error.description
                }
            }
        }
        for (directory, entry) in watchedDirectories where !wanted.contains(directory) {
            watcher.unwatch(entry.watch)
            watches[entry.watch] = nil
            watchedDirectories[directory] = nil
        }
    }

    /// Gathers a batch of events; the work happens once the burst settles.
    func absorb(_ events: [DirectoryEvent]) {
        pendingChanges.absorb(events, rules: discoveryRules) { [unowned self] in self.watches[$0] }
        for event in events where event.mask.contains(.ignored) {
            // The kernel dropped this watch (its directory went away).
            if let directory = watches.removeValue(forKey: event.watch) { watchedDirectories[directory] = nil }
        }
        guard !pendingChanges.isEmpty, changeTimer == nil else { return }
        changeTimer = loop.schedule(after: Self.changeDelay) { [unowned self] in
            self.changeTimer = nil
            self.applyPendingChanges()
        }
    }

    private func applyPendingChanges() {
        let changes = pendingChanges
        pendingChanges = FileSystemChanges()
        if changes.everything || !changes.directories.isEmpty {
            if changes.everything { logger.warning("inotify queue overflowed: rescanning everything") }
            rescanAll()
            return
        }
        for path in changes.paths { examine(path) }
        for path in changes.created where !changes.paths.contains(path) {
            // A new symlink is complete at once; a new regular file is examined on its
            // close-write, not half written.
            if (try? FileSystem.status(path, followSymlinks: false))?.kind == .symlink { examine(path) }
        }
    }
}
