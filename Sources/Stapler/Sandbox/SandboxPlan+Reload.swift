import Reactor

/// SIGHUP under a ruleset that can only be tightened: what a reloaded configuration asks
/// beyond the plan set at start is refused part by part, one line each, and the rest applies.
extension SandboxPlan {
    /// `fresh` with every part the plan cannot serve put back as `running` has it
    /// (certificate paths outside are dropped), and the lines saying so. `checksPorts`: the
    /// TCP layer is in force, so a new metrics port cannot be bound either.
    func admit(_ fresh: Options, running: Options, checksPorts: Bool,
               pathKinds: PathKinds = SandboxPlan.liveKind) -> (Options, [String]) {
        var admitted = fresh
        var lines: [String] = []
        func refuse(_ what: String) { lines.append("restart Stapler to \(what): outside the sandbox set at start") }

        if let directory = fresh.stapleDirectory, directory != running.stapleDirectory, !covers(directory, .write) {
            refuse("write staples below \(directory)")
            admitted.stapleDirectory = running.stapleDirectory
        }
        let needed: Access = admitted.stapleDirectory == nil ? .write : .read
        admitted.certificateLocations = fresh.certificateLocations.filter { location in
            let directory = pathKinds(location.path) == .directory ? location.path : location.path.directory
            if covers(directory, needed) { return true }
            refuse("watch \(location.path)")
            return false
        }
        if fresh.metricsAddress != running.metricsAddress {
            switch fresh.metricsAddress {
            case .unix(let path)? where !covers(path.directory, .write):
                refuse("serve metrics at \(path)")
                admitted.metricsAddress = running.metricsAddress
            case .tcp(_, let port)? where checksPorts && !bindPorts.contains(port):
                refuse("serve metrics on port \(port)")
                admitted.metricsAddress = running.metricsAddress
            default:
                break
            }
        }
        return (admitted, lines)
    }
}
