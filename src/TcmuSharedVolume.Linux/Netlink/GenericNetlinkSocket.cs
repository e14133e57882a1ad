using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Linux.Netlink;

public sealed class NetlinkException(string message, int errno) : IOException(message)
{
    /// <summary>The positive errno (ENOENT when a family does not exist).</summary>
    public int Errno { get; } = errno;
}

/// <summary>
/// A raw AF_NETLINK / NETLINK_GENERIC socket bound to a kernel-assigned port. Blocking by default;
/// <see cref="Receive"/> with <c>wait: false</c> suits an epoll loop on <see cref="Fd"/>.
/// </summary>
public sealed unsafe class GenericNetlinkSocket : IDisposable
{
    private int _fd;
    private uint _sequence = (uint)Environment.TickCount;

    private GenericNetlinkSocket(int fd) => _fd = fd;

    public int Fd => _fd;

    public static GenericNetlinkSocket Open()
    {
        int fd = Libc.socket(Libc.AF_NETLINK, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, Libc.NETLINK_GENERIC);
        if (fd < 0) throw Error("socket(AF_NETLINK, NETLINK_GENERIC)");
        var address = new SockaddrNl { Family = Libc.AF_NETLINK };
        if (Libc.bind(fd, &address, (uint)sizeof(SockaddrNl)) != 0)
        {
            var e = Error("bind(AF_NETLINK)");
            Libc.close(fd);
            throw e;
        }
        return new GenericNetlinkSocket(fd);
    }

    public uint NextSequence() => Interlocked.Increment(ref _sequence);

    /// <summary>The port the kernel assigned to this socket (getsockname's nl_pid).</summary>
    public uint PortId
    {
        get
        {
            var address = new SockaddrNl();
            uint length = (uint)sizeof(SockaddrNl);
            if (Libc.getsockname(_fd, &address, &length) != 0) throw Error("getsockname(netlink)");
            return address.PortId;
        }
    }

    /// <summary>Sends one datagram to another netlink socket (tests: a process posing as the kernel).</summary>
    internal void SendTo(uint portId, ReadOnlySpan<byte> datagram)
    {
        var to = new SockaddrNl { Family = Libc.AF_NETLINK, PortId = portId };
        fixed (byte* p = datagram)
            if (Libc.sendto(_fd, p, datagram.Length, 0, &to, (uint)sizeof(SockaddrNl)) < 0) throw Error("sendto(netlink)");
    }

    /// <summary>Sends one datagram to the kernel (port 0).</summary>
    public void Send(ReadOnlySpan<byte> datagram)
    {
        var kernel = new SockaddrNl { Family = Libc.AF_NETLINK };
        fixed (byte* p = datagram)
        {
            while (true)
            {
                nint n = Libc.sendto(_fd, p, datagram.Length, 0, &kernel, (uint)sizeof(SockaddrNl));
                if (n >= 0) return;
                if (Marshal.GetLastPInvokeError() != Libc.EINTR) throw Error("sendto(netlink)");
            }
        }
    }

    /// <summary>Datagrams from other sockets than the kernel's that were dropped.</summary>
    public long DroppedFromUserspace { get; private set; }

    /// <summary>One datagram from the kernel; 0 when <paramref name="wait"/> is false and nothing
    /// is queued. A datagram another process sent to our port (nl_pid != 0) is dropped: only the
    /// kernel may announce devices, whatever the kernel's own CAP_NET_ADMIN check lets through.</summary>
    public int Receive(Span<byte> buffer, bool wait = true)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var from = new SockaddrNl();
                uint fromLength = (uint)sizeof(SockaddrNl);
                nint n = Libc.recvfrom(_fd, p, buffer.Length, wait ? 0 : Libc.MSG_DONTWAIT, &from, &fromLength);
                if (n >= 0 && from.PortId != 0)
                {
                    DroppedFromUserspace++;
                    continue;
                }
                if (n >= 0) return (int)n;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR) continue;
                if (errno == Libc.EAGAIN) return 0;
                throw new NetlinkException($"recvfrom(netlink): {Libc.ErrorMessage(errno)}", errno);
            }
        }
    }

    public void JoinGroup(uint group)
    {
        if (Libc.setsockopt(_fd, Libc.SOL_NETLINK, Libc.NETLINK_ADD_MEMBERSHIP, &group, sizeof(uint)) != 0)
            throw Error($"joining netlink multicast group {group}");
    }

    /// <summary>Bounds blocking receives (SO_RCVTIMEO); a timed-out receive returns 0.</summary>
    public void SetReceiveTimeout(TimeSpan timeout)
    {
        var tv = new Timeval { Seconds = (long)timeout.TotalSeconds, Microseconds = timeout.Microseconds + timeout.Milliseconds * 1000L };
        if (Libc.setsockopt(_fd, Libc.SOL_SOCKET, Libc.SO_RCVTIMEO, &tv, (uint)sizeof(Timeval)) != 0)
            throw Error("setsockopt(SO_RCVTIMEO)");
    }

    /// <summary>
    /// Asks the controller for a family by name. A family the kernel does not have (e.g. TCM-USER
    /// when target_core_user is not loaded) gives false and "generic netlink family 'X' not found".
    /// </summary>
    public bool TryResolveFamily(string name, [NotNullWhen(true)] out GenlFamily? family, [NotNullWhen(false)] out string? error)
    {
        family = null;
        Span<byte> request = stackalloc byte[64 + name.Length];
        uint seq = NextSequence();
        Send(request[..GenlController.WriteGetFamily(request, name, seq)]);

        var buffer = new byte[16384];
        SetReceiveTimeout(TimeSpan.FromSeconds(5));
        try
        {
            while (true)
            {
                int n = Receive(buffer);
                if (n == 0)
                {
                    error = $"the generic netlink controller did not answer for family '{name}'";
                    return false;
                }
                var reader = new NetlinkMessageReader(buffer.AsSpan(0, n));
                while (reader.TryRead(out var message))
                {
                    if (message.Sequence != seq) continue; // a multicast event or a stale answer
                    if (message.TryGetError(out int err))
                    {
                        if (err == 0) continue; // an ACK
                        error = -err == Libc.ENOENT
                            ? $"generic netlink family '{name}' not found"
                            : $"looking up generic netlink family '{name}' failed: {Libc.ErrorMessage(-err)}";
                        return false;
                    }
                    if (message.Type == Nl.GenlIdCtrl && GenlMessage.TryParse(message.Payload, out var genl)
                        && GenlController.TryParseFamily(genl.Attributes, out family))
                    {
                        error = null;
                        return true;
                    }
                    error = $"the generic netlink controller's answer for '{name}' could not be parsed";
                    return false;
                }
            }
        }
        finally
        {
            SetReceiveTimeout(TimeSpan.Zero); // back to blocking without limit
        }
    }

    public GenlFamily ResolveFamily(string name) =>
        TryResolveFamily(name, out var family, out var error) ? family : throw new NetlinkException(error, Libc.ENOENT);

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.close(fd);
    }

    private static NetlinkException Error(string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new NetlinkException($"{what}: {Libc.ErrorMessage(errno)}", errno);
    }
}
