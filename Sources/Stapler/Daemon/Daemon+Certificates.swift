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
            forget(certificate)
        }
        let (newlyWatched, watchProblems) = updateWatches(result.directories)
        reportProblems(result.problems, watchProblems: watchProblems)
        for stale in result.staleTemporaryFiles {
            // Left by a writer that died mid-write; the staple beside it is intact.
            if (try? FileSystem.remove(stale)) != nil { logger.info("\(stale): removed, left by a stopped writer") }
        }
        updateParentWatches()
        if !newlyWatched.isEmpty {
            // A file made between a directory's listing and its watch raised no event we
            // could see: list such directories once more, now that their watches are in place.
            pendingChanges.directories.formUnion(newlyWatched)
            scheduleChangesPass()
        }
        logger.debug("scanned: \(result.files.count) certificate file(s), \(watchedDirectories.count) "
                     + "watched director\(watchedDirectories.count == 1 ? "y" : "ies")")
    }

    /// Logs each problem once, when it appears or changes, and says when it is gone. A
    /// directory that cannot be watched is a warning (the periodic rescan still covers it),
    /// and not worth a word when it cannot even be read.
    private func reportProblems(_ problems: [FileError], watchProblems: [FilePath: String]) {
        var current: [FilePath: String] = [:]
        for problem in problems {
            let text = problem.description
            current[problem.path] = text
            if reportedProblems[problem.path] != text { logger.error(text) }
        }
        for (path, text) in watchProblems where current[path] == nil {
            current[path] = text
            if reportedProblems[path] != text { logger.warning(text) }
        }
        for (path, text) in reportedProblems where current[path] == nil {
            if text.hasSuffix(Self.watchFallback) {
                logger.debug("\(path): watched again, or no longer scanned")
            } else {
                logger.info("\(path): readable again")
            }
        }
        reportedProblems = current
    }

    private static let watchFallback = "; relying on the periodic rescan"

    /// Re-examines one path an inotify event named: new, changed, gone, or unchanged.
    func examine(_ path: FilePath) {
        let status: FileStatus
        do {
            status = try FileSystem.status(path)
        } catch {
            if let certificate = certificates[path] { forget(certificate) }
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
        certificate.isBroken = false
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
        if recycle(certificate, record: record, now: now) { return }
        enqueue(certificate)
    }

    /// The staple file already on disk, if it verifies: it is what HAProxy serves now, so it
    /// counts for urgency and status even when `--no-recycle` asks for a fresh one. Kept as
    /// it is until its refresh when it has time left and recycling is on.
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
        guard options.recycleStaples, refreshPolicy.isRecyclable(nextUpdate: verified.nextUpdate, now: now) else {
            return false
        }
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
        // A file that should be a certificate but cannot be used fails a --one-off pass;
        // keys, CA files, certificates without OCSP and expired ones are no failure of ours.
        switch error.reason {
        case .malformed, .unreadable, .issuerNotFound: certificate.isBroken = true
        case .noCertificate, .noEndEntity, .noOCSPURL, .expired: certificate.isBroken = false
        }
        certificate.record = nil
        certificate.staple = nil
        certificate.lastError = nil
        certificate.failures = 0
    }

    /// Drops a certificate that is gone, with the same line whether an event or a rescan
    /// noticed first. Its staple file stays where it is.
    func forget(_ certificate: TrackedCertificate) {
        cancelRefresh(certificate)
        certificates[certificate.path] = nil
        if certificate.record != nil { logger.info("\(certificate.path): no longer found, forgotten") }
    }

    // MARK: inotify

    /// Keeps one watch per scanned directory, dropping those of directories no longer found.
    /// Returns the directories watched from now on, and those that cannot be watched (out of
    /// watches: fs.inotify.max_user_watches), with the reason.
    ///
    /// Every scanned directory is watched again at each scan: for a directory already
    /// watched the kernel answers with the same descriptor, and a different one means its
    /// path leads somewhere else now (a symlink to it was repointed), whose events the old
    /// watch would never see.
    func updateWatches(_ directories: [(path: FilePath, location: Int)]) -> (added: [FilePath],
                                                                               problems: [FilePath: String]) {
        guard let watcher else { return ([], [:]) }
        var wanted: [FilePath: Int] = [:]
        for (directory, location) in directories { wanted[directory] = location }
        // Drop first: a directory renamed within the tree keeps its inode, and so its watch
        // descriptor; dropping it after watching the new name would unwatch the new name.
        for (directory, entry) in watchedDirectories where wanted[directory] == nil {
            watches[entry.watch] = nil
            watchedDirectories[directory] = nil
            releaseWatch(entry.watch)
        }
        var added: [FilePath] = []
        var problems: [FilePath: String] = [:]
        for (directory, location) in directories {
            let watch: WatchDescriptor
            do {
                watch = try watcher.watch(directory, mask: FileSystemChanges.watchMask)
            } catch {
                // Gone since the listing (its events will tell), or out of watches.
                if watchedDirectories[directory] == nil { problems[directory] = "\(error)\(Self.watchFallback)" }
                continue
            }
            if let existing = watchedDirectories[directory] {
                if existing.watch == watch {
                    watchedDirectories[directory] = (watch, location)
                    continue
                }
                if watches[existing.watch] == directory { watches[existing.watch] = nil }
                releaseWatch(existing.watch)
            }
            watches[watch] = directory
            watchedDirectories[directory] = (watch, location)
            added.append(directory)
        }
        return (added, problems)
    }

    /// Removes a kernel watch nothing uses any more (a parent watch and a certificate
    /// directory watch can be one and the same).
    private func releaseWatch(_ watch: WatchDescriptor) {
        guard watches[watch] == nil, parentWatches.directories[watch] == nil else { return }
        watcher?.unwatch(watch)
    }

    /// Watches the directory holding each configured path, for the events about the path
    /// itself that no watch inside it can report. The same mask as certificate directories:
    /// a parent that is one of them shares its watch, and a narrower mask would replace it.
    func updateParentWatches() {
        guard let watcher else { return }
        var wanted = Set<FilePath>()
        var locations = Set<FilePath>()
        for location in options.certificateLocations {
            let parent = location.path.directory
            wanted.insert(parent)
            locations.insert(parent.appending(location.path.lastComponent))
        }
        parentWatches.locations = locations
        for (parent, watch) in parentWatches.watches where !wanted.contains(parent) {
            parentWatches.watches[parent] = nil
            parentWatches.directories[watch] = nil
            releaseWatch(watch)
        }
        for parent in wanted {
            // A parent that cannot be watched (missing, unreadable) is left to the periodic
            // rescan, and tried again at every scan. Watched again like any directory, in
            // case its path leads elsewhere now.
            guard let watch = try? watcher.watch(parent, mask: FileSystemChanges.watchMask) else { continue }
            let previous = parentWatches.watches[parent]
            guard previous != watch else { continue }
            parentWatches.watches[parent] = watch
            parentWatches.directories[watch] = parent
            if let previous {
                parentWatches.directories[previous] = nil
                releaseWatch(previous)
            }
        }
    }

    /// Gathers a batch of events; the work happens once the burst settles.
    func absorb(_ events: [DirectoryEvent]) {
        pendingChanges.absorb(events, rules: discoveryRules) { [unowned self] in self.watches[$0] }
        pendingChanges.absorbParentEvents(events, parent: { [unowned self] in self.parentWatches.directories[$0] },
                                          isLocation: { [unowned self] in self.parentWatches.locations.contains($0) })
        for event in events where event.mask.contains(.ignored) {
            // The kernel dropped this watch (its directory went away).
            if let directory = watches.removeValue(forKey: event.watch) { watchedDirectories[directory] = nil }
            if let parent = parentWatches.directories.removeValue(forKey: event.watch) {
                parentWatches.watches[parent] = nil
            }
        }
        scheduleChangesPass()
    }

    /// Applies the pending changes once the coalescing window has passed.
    func scheduleChangesPass() {
        guard !pendingChanges.isEmpty, changeTimer == nil, !isStopping else { return }
        changeTimer = loop.schedule(after: Self.changeDelay) { [unowned self] in
            self.changeTimer = nil
            self.applyPendingChanges()
        }
    }

    private func applyPendingChanges() {
        let changes = pendingChanges
        pendingChanges = FileSystemChanges()
        let directoryLinkChanged = changes.possibleDirectories.contains {
            watchedDirectories[$0] != nil || (try? FileSystem.status($0))?.kind == .directory
        }
        if changes.everything || !changes.directories.isEmpty || directoryLinkChanged {
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

/// The watches on the directories that hold the configured paths (see `updateParentWatches`).
struct ParentWatches {
    var directories: [WatchDescriptor: FilePath] = [:]
    var watches: [FilePath: WatchDescriptor] = [:]
    /// The configured paths, spelled as the parents' events name them.
    var locations = Set<FilePath>()
}
