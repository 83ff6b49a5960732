import Glibc
import Reactor

/// Path arithmetic the configuration needs: the predecessor passed every path through
/// Python's os.path.abspath, so relative paths are taken against the working directory at
/// startup (the daemon may chdir("/") later) and "." / ".." / "//" are folded away.
/// Purely lexical: links are not resolved, as with abspath.
enum ConfigurationPaths {
    static func absolute(_ path: FilePath, base: FilePath) -> FilePath {
        normalized(path.isAbsolute ? path : base.appending(path))
    }

    static func normalized(_ path: FilePath) -> FilePath {
        let slash = UInt8(ascii: "/")
        let absolute = path.isAbsolute
        var components: [ArraySlice<UInt8>] = []
        for component in path.bytes.split(separator: slash) {
            if component.elementsEqual([UInt8(ascii: ".")]) { continue }
            if component.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                if let last = components.last, !last.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                    components.removeLast()
                } else if !absolute {
                    components.append(component)
                }
                continue
            }
            components.append(component)
        }
        var bytes: [UInt8] = absolute ? [slash] : []
        for (index, component) in components.enumerated() {
            if index > 0 { bytes.append(slash) }
            bytes.append(contentsOf: component)
        }
        if bytes.isEmpty { bytes = [UInt8(ascii: ".")] }
        return FilePath(bytes: bytes)
    }

    /// getcwd, or "/" if the working directory has been removed.
    static func currentDirectory() -> FilePath {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return buffer.withUnsafeBufferPointer { FilePath(cString: $0.baseAddress!) }
    }

    /// "~/x" with HOME from the environment; nil when HOME is unset or empty.
    static func home(_ relative: String, environment: [String: String]) -> FilePath? {
        guard let home = environment["HOME"], !home.isEmpty else { return nil }
        return normalized(FilePath(home).appending(relative))
    }
}
