import Foundation

/// Writes bytes into a running process's end of a socketpair, as that process itself would:
/// how a test plays a daemon taken over by an attacker, talking to the helper it forked. The
/// helper's only socket is looked up, its peer found through the kernel's socket diagnostics
/// (NETLINK_SOCK_DIAG, UDIAG_SHOW_PEER), and the owner's descriptor for that peer copied with
/// pidfd_getfd (Linux 5.6; needs CAP_SYS_PTRACE, which root has). Runs in Python (a
/// prerequisite already): the syscalls are one ctypes call away there.
public enum SocketPairIntruder {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Sends `bytes` from `owner`'s end of the socketpair whose other end is `helper`'s only socket.
    public static func send(_ bytes: [UInt8], from owner: Int32, toItsHelper helper: Int32) throws {
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let result = try Shell.run(["python3", "-c", script, "\(owner)", "\(helper)", hex], allowFailure: true)
        guard result.status == 0 else { throw Failure(description: "python3 exited \(result.status): \(result.output)") }
    }

    private static let script = """
        import ctypes, os, re, socket, struct, sys
        owner, helper, payload = int(sys.argv[1]), int(sys.argv[2]), bytes.fromhex(sys.argv[3])
        def sockets(pid):
            found = {}
            for fd in os.listdir(f'/proc/{pid}/fd'):
                m = re.fullmatch(r'socket:\\[(\\d+)\\]', os.readlink(f'/proc/{pid}/fd/{fd}'))
                if m: found[int(m.group(1))] = int(fd)
            return found
        helper_sockets = sockets(helper)
        assert len(helper_sockets) == 1, f'the helper holds {len(helper_sockets)} sockets'
        (helper_inode,) = helper_sockets
        # unix_diag_req: family, protocol, pad, states, inode, show (UDIAG_SHOW_PEER), cookie.
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4)
        request = struct.pack('=BBHIIIII', socket.AF_UNIX, 0, 0, 0xffffffff, helper_inode, 4, 0xffffffff, 0xffffffff)
        # SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST.
        nl.send(struct.pack('=IHHII', 16 + len(request), 20, 1, 1, 0) + request)
        answer = nl.recv(65536)
        length, kind = struct.unpack_from('=IH', answer, 0)
        assert kind == 20, f'sock_diag answered message type {kind}'
        peer, offset = None, 16 + 16
        while offset < length:
            size, attribute = struct.unpack_from('=HH', answer, offset)
            if attribute == 2: peer = struct.unpack_from('=I', answer, offset + 4)[0]  # UNIX_DIAG_PEER
            offset += (size + 3) & ~3
        owner_fd = sockets(owner).get(peer)
        assert owner_fd is not None, f'the owner holds no end of socket {helper_inode} (peer {peer})'
        libc = ctypes.CDLL(None, use_errno=True)
        copy = libc.syscall(438, os.pidfd_open(owner), owner_fd, 0)  # pidfd_getfd
        assert copy >= 0, os.strerror(ctypes.get_errno())
        os.write(copy, payload)
        """
}
