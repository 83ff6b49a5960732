import Reactor

/// The certificate table: what the watcher observed becomes new, changed or forgotten
/// entries; each file is parsed when it changes, and its refresh handed to the refresher.
extension Daemon {
    func observe(_ observation: CertificateWatcher.Observation) {
        switch observation {
        case .scanned(let files):
            reconcile(files)
        case .rescanned(let files, let unchanged):
            reconcile(files, unchangedWithoutStat: unchanged)
        case .present(let path, let status, let location):
            if let certificate = certificates[path] {
                let version = FileVersion(status)
                guard !certificate.hasVersion(version) else { return }
                certificate.noteVersion(version)
                loads.add(certificate, changed: true)
            } else if let location {
                let certificate = TrackedCertificate(path: path, location: location, fileStatus: status)
                certificates[path] = certificate
                loads.add(certificate, changed: false)
            }
        case .absent(let path):
            if let certificate = certificates[path] { forget(certificate) }
        }
    }

    /// A scan: files whose status changed are read again, new ones added, missing ones
    /// forgotten, and a refresh whose timer was lost is caught up.
    ///
    /// The scan's paths are distinct, so when it found as many known files as the table
    /// holds, none is missing: the set of found paths, a hash of every path, is built only
    /// when some file went away. A periodic rescan names only the files it stat'ed and
    /// counts the others (`unchangedWithoutStat`): when some known file is missing from it,
    /// a full scan, soon, says which.
    private func reconcile(_ files: [DiscoveredFile], unchangedWithoutStat: Int? = nil) {
        let known = certificates.count
        var foundKnown = unchangedWithoutStat ?? 0
        let now = UTCTime.now()
        for file in files {
            if let certificate = certificates[file.path] {
                foundKnown += 1
                if certificate.location != file.location { certificate.location = file.location }
                if !certificate.hasVersion(file.version) {
                    certificate.noteVersion(file.version)
                    loads.add(certificate, changed: true)
                } else if !isStopping {
                    refresher.catchUpIfLate(certificate, now: now)
                }
            } else {
                let certificate = TrackedCertificate(path: file.path, location: file.location, version: file.version)
                certificates[file.path] = certificate
                loads.add(certificate, changed: false)
            }
        }
        guard foundKnown < known else { return }
        if unchangedWithoutStat != nil {
            logger.info("rescan: \(known - foundKnown) known certificate file(s) not found; looking at every file")
            loop.executeSoon { [weak self] in self?.watcher.rescan() }
            return
        }
        var seen = Set<FilePath>(minimumCapacity: files.count)
        for file in files { seen.insert(file.path) }
        for certificate in certificates.values where !seen.contains(certificate.path) {
            forget(certificate)
        }
    }

    /// The files the table holds, by inode, for a periodic rescan that may count them
    /// instead of stat'ing them. The same walk of the table catches up refreshes whose time
    /// has passed (what a full scan's reconciliation does file by file): the files only
    /// counted are never looked up, and one walk of 100,000 objects is enough per rescan.
    func knownInodesForRescan() -> Set<UInt64> {
        var known = Set<UInt64>(minimumCapacity: certificates.count)
        let now = UTCTime.now()
        for certificate in certificates.values {
            known.insert(certificate.inode)
            if !isStopping { refresher.catchUpIfLate(certificate, now: now) }
        }
        return known
    }

    /// Parses the file and decides what it needs. A certificate seen for the first time
    /// keeps a good staple on disk; a changed file (replaced, edited, or just `touch`ed: the
    /// operator's way to force a refresh) is fetched at once. Called by `loads`, a slice of
    /// files per pass of the loop; a file forgotten while it waited is left alone.
    func load(_ certificate: TrackedCertificate, changed: Bool) {
        guard certificates[certificate.path] === certificate else { return }
        let wasActive = certificate.record != nil
        refresher.cancel(certificate)
        let record: CertificateRecord
        do {
            record = try CertificateBundle.load(path: certificate.path, now: UTCTime.now(), issuers: issuers,
                                                issuerLocation: Self.stapleLocation(options))
        } catch {
            return deactivate(certificate, error)
        }
        certificate.inactiveKind = nil
        issuerFetcher.forget(certificate.path)
        if certificate.inactiveReason != nil {
            logger.info("\(certificate.path): usable again: \(record.subject)")
            certificate.inactiveReason = nil
        }
        if certificate.record?.certID != record.certID { refresher.forget(certificate) }
        certificate.record = record
        sandboxSaw(record.ocspURLs)
        logger.debug("\(certificate.path): \(record.subject), serial \(record.serialHex), "
                     + "OCSP \(record.ocspURLs.joined(separator: " ")), must-staple \(record.mustStaple)")
        guard !isStopping else { return }
        if changed && wasActive {
            logger.info("\(certificate.path): changed on disk, "
                        + (options.pushOnly ? "reading its staple again" : "fetching a fresh staple"))
            refresher.refreshNow(certificate)
        } else {
            refresher.adopt(certificate)
        }
    }

    /// Nothing to staple in this file (any more): say why once, and stop its refreshes.
    private func deactivate(_ certificate: TrackedCertificate, _ error: CertificateBundleError) {
        let text = error.description
        // A missing issuer being fetched: the fetch's own lines say so, once for all the
        // certificates of that issuer.
        var fetching = false
        if let missing = error.missingIssuer { sandboxSaw(missing.caIssuersURLs + missing.ocspURLs) }
        if let missing = error.missingIssuer, options.fetchIssuers, !options.pushOnly, !isStopping {
            fetching = issuerFetcher.request(missing, for: certificate.path, location: Self.stapleLocation(options))
        }
        if certificate.inactiveReason != text {
            switch error.reason {
            case .issuerNotFound where fetching: logger.debug(text)
            case .noCertificate, .noEndEntity: logger.debug(text)
            case .noOCSPURL: logger.info(text)
            case .expired, .issuerNotFound: logger.warning(text)
            case .malformed, .unreadable: logger.error(text)
            }
        }
        certificate.inactiveReason = text
        // A file that should be a certificate but cannot be used fails a --one-off pass
        // (`isBroken`); keys, CA files, certificates without OCSP and expired ones are no
        // failure of ours.
        certificate.inactiveKind = InactiveKind(error.reason)
        certificate.record = nil
        refresher.forget(certificate)
    }

    /// Drops a certificate that is gone, with the same line whether an event or a rescan
    /// noticed first. Its staple file stays where it is.
    private func forget(_ certificate: TrackedCertificate) {
        refresher.cancel(certificate)
        issuerFetcher.forget(certificate.path)
        certificates[certificate.path] = nil
        if certificate.record != nil { logger.info("\(certificate.path): no longer found, forgotten") }
    }

    /// Issuers were written for these certificates: read them again, to be stapled as usual.
    func issuersFetched(for paths: [FilePath]) {
        guard !isStopping else { return }
        for path in paths {
            guard let certificate = certificates[path] else { continue }
            // Its refusal was logged at debug level only, and the fetch said it all.
            certificate.inactiveReason = nil
            load(certificate, changed: false)
        }
    }
}
