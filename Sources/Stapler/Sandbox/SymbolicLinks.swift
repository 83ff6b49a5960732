import Reactor

/// The live file system's answer for `SandboxPlan.LinkTargets`: the symbolic links met
/// in a certificate location at start, resolved.
enum SymbolicLinks {
    /// A directory tree is walked this deep and this wide at most: the plan is made once at
    /// start, and a certificate tree larger than this is better named with its real paths.
    static let maxDepth = 8
    static let maxEntries = 200_000

    static func live(_ location: FilePath, recursive: Bool) -> [(target: FilePath, isDirectory: Bool)] {
        var targets: [(target: FilePath, isDirectory: Bool)] = []
        var visited = 0
        func resolve(_ path: FilePath) -> (FilePath, Bool)? {
            guard let real = try? FileSystem.realPath(path), let status = try? FileSystem.status(real) else { return nil }
            return (real, status.kind == .directory)
        }
        func walk(_ directory: FilePath, depth: Int) {
            guard let entries = try? FileSystem.listDirectory(directory) else { return }
            for entry in entries {
                visited += 1
                guard visited <= maxEntries else { return }
                let path = directory.appending(entry.name)
                switch entry.kind {
                case .symlink:
                    if let (real, isDirectory) = resolve(path) { targets.append((real, isDirectory)) }
                case .directory where recursive && depth < maxDepth:
                    walk(path, depth: depth + 1)
                default:
                    break
                }
            }
        }
        guard let own = try? FileSystem.status(location, followSymlinks: false) else { return [] }
        var start = location
        if own.kind == .symlink {
            guard let (real, isDirectory) = resolve(location) else { return [] }
            targets.append((real, isDirectory))
            start = real
        }
        if (try? FileSystem.status(start))?.kind == .directory { walk(start, depth: 0) }
        return targets
    }
}
