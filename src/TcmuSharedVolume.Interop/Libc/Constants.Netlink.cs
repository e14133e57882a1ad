using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static partial class Libc
{
    // sockets (x86_64 / generic Linux values)
    public const int AF_NETLINK = 16;
    public const int SOCK_RAW = 3;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int NETLINK_GENERIC = 16;
    public const int SOL_SOCKET = 1;
    public const int SO_RCVBUF = 8;
    public const int SO_RCVTIMEO = 20;
    public const int SOL_NETLINK = 270;
    public const int NETLINK_ADD_MEMBERSHIP = 1;
    public const int NETLINK_DROP_MEMBERSHIP = 2;
    public const int MSG_DONTWAIT = 0x40;
    public const int MSG_TRUNC = 0x20;

    public const int ENOENT = 2;
    public const int ENOBUFS = 105;
    public const int EWOULDBLOCK = EAGAIN;
}

/// <summary>struct sockaddr_nl (12 bytes): family, pad, port id, multicast group bitmask.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct SockaddrNl
{
    public ushort Family;
    public ushort Pad;
    public uint PortId;
    public uint Groups;
}

/// <summary>struct timeval on 64-bit Linux, for SO_RCVTIMEO.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Timeval
{
    public long Seconds;
    public long Microseconds;
}
