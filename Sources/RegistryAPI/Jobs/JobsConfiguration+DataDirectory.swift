import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension JobsConfiguration {
    /// Refuses job roots that overlap the data directory: equal to it, containing it or inside
    /// it, compared after resolving symbolic links (`serve` checks this at start).
    ///
    /// Why: a job writes and replaces files anywhere under its roots, and reads any file there,
    /// so such a root would let an API caller replace the LMDB environment or the TLS keys with
    /// an export, or import from (and report lines of) the daemon's own files.
    public func checkApart(fromDataDirectory dataDirectory: String) throws(ConfigurationFieldError) {
        let data = Self.resolved(dataDirectory)
        for root in roots {
            let resolvedRoot = Self.resolved(root)
            let how: String
            if resolvedRoot == data {
                how = "is the data directory"
            } else if JobService.isInside(data, resolvedRoot) {
                how = "contains the data directory"
            } else if JobService.isInside(resolvedRoot, data) {
                how = "is inside the data directory"
            } else {
                continue
            }
            let shown = resolvedRoot == root ? root : "\(root) (\(resolvedRoot))"
            throw ConfigurationFieldError("jobs.roots", "\(shown) \(how) \(data); job roots must be apart from it")
        }
    }

    /// `path` made absolute with every symbolic link resolved; a part that does not exist yet
    /// (a data directory before the first start) is appended as written.
    static func resolved(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var existing = absolute.split(separator: "/").map(String.init)
        var missing: [String] = []
        while true {
            let candidate = "/" + existing.joined(separator: "/")
            if let real = realpath(candidate, nil) {
                defer { free(real) }
                var components = String(cString: real).split(separator: "/").map(String.init)
                for component in missing {
                    switch component {
                    case ".": continue
                    case "..": _ = components.popLast()
                    default: components.append(component)
                    }
                }
                return "/" + components.joined(separator: "/")
            }
            guard let last = existing.popLast() else { return absolute }
            missing.insert(last, at: 0)
        }
    }
}
