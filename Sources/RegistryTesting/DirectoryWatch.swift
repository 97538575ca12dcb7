#if os(Linux)
    import Glibc

    /// What happened to the entries of one directory, as Linux inotify reports it.
    ///
    /// The tests of secret files use it to show that a file was never chmod'ed after it appeared
    /// (an `IN_ATTRIB` event on its name), which its final mode cannot show: a file written with
    /// the default mode and chmod'ed to 0600 afterwards ends with the same mode as one created 0600.
    public final class DirectoryWatch {
        public struct Event: Sendable, Hashable, CustomStringConvertible {
            public var name: String
            public var mask: UInt32

            /// A change of mode, owner or times (chmod, chown, utimes) on this name.
            public var isAttributeChange: Bool { mask & UInt32(IN_ATTRIB) != 0 }

            public var description: String { "\(name) 0x\(String(mask, radix: 16))" }
        }

        private let descriptor: Int32

        /// Starts watching `directory` (not its subdirectories).
        public init(_ directory: String) throws {
            // IN_NONBLOCK and IN_CLOEXEC are defined as O_NONBLOCK and O_CLOEXEC.
            descriptor = inotify_init1(O_NONBLOCK | O_CLOEXEC)
            guard descriptor >= 0 else { throw WatchError("inotify_init1: errno \(errno)") }
            // 0xfff is IN_ALL_EVENTS (a macro Swift does not import).
            guard inotify_add_watch(descriptor, directory, 0xfff) >= 0 else {
                close(descriptor)
                throw WatchError("inotify_add_watch \(directory): errno \(errno)")
            }
        }

        deinit { close(descriptor) }

        /// The events queued since the last call, in order. Never waits: the kernel queues an event
        /// before the system call that caused it returns, so everything done before this call is in.
        public func events() -> [Event] {
            var events: [Event] = []
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                guard count > 0 else { return events }  // EAGAIN: the queue is empty
                // struct inotify_event: wd, mask, cookie, len (32 bits each, host order), then
                // `len` bytes of NUL-padded name.
                var offset = 0
                while offset + 16 <= count {
                    let mask = Self.word(buffer, at: offset + 4)
                    let length = Int(Self.word(buffer, at: offset + 12))
                    let name = buffer[(offset + 16)..<(offset + 16 + length)].prefix { $0 != 0 }
                    events.append(Event(name: String(decoding: name, as: UTF8.self), mask: mask))
                    offset += 16 + length
                }
            }
        }

        /// The 32-bit word at `offset`, in host order: assembled as little-endian, then converted
        /// (a no-op on little-endian hosts, a swap back on big-endian ones).
        private static func word(_ bytes: [UInt8], at offset: Int) -> UInt32 {
            let value = bytes[offset..<(offset + 4)].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            return UInt32(littleEndian: value)
        }
    }

    struct WatchError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
#endif
