import Foundation

/// A certificate bundle HAProxy serves as `<name>.test` (SNI), with its leaf for revoking
/// and for checking staples.
public struct HAProxySite {
    public let name: String
    public let leaf: TestPKI.Leaf
    public let bundle: String
    public var serverName: String { "\(name).test" }
}

extension TestPKI {
    /// Issues a leaf for `<name>.test` and writes its bundle (leaf, CA, key) into `directory`,
    /// with a good staple beside it when HAProxy should start with one.
    public func haproxySite(_ name: String, in directory: String, ocspURL: String,
                            stapleAtStart: Bool) throws -> HAProxySite {
        let leaf = try issueLeaf(commonName: "\(name).test", ocspURLs: [ocspURL])
        let site = HAProxySite(name: name, leaf: leaf, bundle: "\(directory)/\(name).pem")
        try writeBundle(leaf, to: site.bundle)
        if stapleAtStart {
            try ocspResponse(for: leaf).write(to: URL(fileURLWithPath: site.bundle + ".ocsp"))
        }
        return site
    }
}
