using System.Runtime.InteropServices;
using System.Text;

namespace TcmuSharedVolume.Linux.Netlink;

/// <summary>
/// Netlink wire constants (uapi linux/netlink.h, linux/genetlink.h). Every integer is in host
/// byte order; every header and attribute starts on a 4-byte boundary (NLMSG_ALIGN, NLA_ALIGN).
/// </summary>
public static class Nl
{
    /// <summary>struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }</summary>
    public const int HeaderSize = 16;

    /// <summary>struct genlmsghdr { u8 cmd; u8 version; u16 reserved; }</summary>
    public const int GenlHeaderSize = 4;

    /// <summary>struct nlattr { u16 len; u16 type; }</summary>
    public const int AttributeHeaderSize = 4;

    public const ushort FlagRequest = 0x1;
    public const ushort FlagMulti = 0x2;
    public const ushort FlagAck = 0x4;

    public const ushort TypeNoop = 1;
    public const ushort TypeError = 2;
    public const ushort TypeDone = 3;
    public const ushort TypeOverrun = 4;

    /// <summary>The generic netlink controller's fixed family id (GENL_ID_CTRL = NLMSG_MIN_TYPE).</summary>
    public const ushort GenlIdCtrl = 0x10;

    /// <summary>Upper bits of nla_type are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER), not the type.</summary>
    public const ushort AttributeTypeMask = 0x3FFF;
    public const ushort AttributeFlagNested = 0x8000;

    public static int Align(int length) => (length + 3) & ~3;
}

/// <summary>Thrown when a message would not fit its buffer; netlink messages here are small and bounded.</summary>
public sealed class NetlinkBufferTooSmallException() : InvalidOperationException("netlink message does not fit its buffer");

/// <summary>
/// Builds netlink messages in a caller's buffer: nlmsghdr, optional genlmsghdr, then attributes
/// (nested ones too), padding every piece to 4 bytes with zeroes. Several messages may follow one
/// another in one buffer.
/// </summary>
public ref struct NetlinkWriter
{
    private readonly Span<byte> _buffer;
    private int _position;
    private int _messageStart;

    public NetlinkWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        _messageStart = -1;
    }

    /// <summary>Bytes written so far (all complete messages).</summary>
    public readonly int Length => _position;

    public readonly ReadOnlySpan<byte> Written => _buffer[.._position];

    public void BeginMessage(ushort type, ushort flags, uint sequence, uint portId = 0)
    {
        if (_messageStart >= 0) throw new InvalidOperationException("the previous message is not ended");
        var header = Reserve(Nl.HeaderSize);
        _messageStart = _position - Nl.HeaderSize;
        MemoryMarshal.Write(header, 0u); // length, set by EndMessage
        MemoryMarshal.Write(header[4..], type);
        MemoryMarshal.Write(header[6..], flags);
        MemoryMarshal.Write(header[8..], sequence);
        MemoryMarshal.Write(header[12..], portId);
    }

    public void GenlHeader(byte command, byte version)
    {
        var h = Reserve(Nl.GenlHeaderSize);
        h[0] = command;
        h[1] = version;
        h[2] = 0;
        h[3] = 0;
    }

    public void PutU8(ushort type, byte value) => BeginAttribute(type, 1)[0] = value;

    public void PutU16(ushort type, ushort value) => MemoryMarshal.Write(BeginAttribute(type, 2), value);

    public void PutU32(ushort type, uint value) => MemoryMarshal.Write(BeginAttribute(type, 4), value);

    public void PutS32(ushort type, int value) => MemoryMarshal.Write(BeginAttribute(type, 4), value);

    public void PutU64(ushort type, ulong value) => MemoryMarshal.Write(BeginAttribute(type, 8), value);

    /// <summary>NLA_NUL_STRING / NLA_STRING as the kernel expects: UTF-8 with a terminating NUL.</summary>
    public void PutString(ushort type, string value)
    {
        int n = Encoding.UTF8.GetByteCount(value);
        var a = BeginAttribute(type, n + 1);
        Encoding.UTF8.GetBytes(value, a);
        a[n] = 0;
    }

    public void Put(ushort type, scoped ReadOnlySpan<byte> value) => value.CopyTo(BeginAttribute(type, value.Length));

    /// <summary>Opens a nested attribute; returns its offset for <see cref="EndNested"/>.</summary>
    public int BeginNested(ushort type)
    {
        int start = _position;
        var h = Reserve(Nl.AttributeHeaderSize);
        MemoryMarshal.Write(h, (ushort)0);
        MemoryMarshal.Write(h[2..], (ushort)(type | Nl.AttributeFlagNested));
        return start;
    }

    public void EndNested(int start) => MemoryMarshal.Write(_buffer[start..], checked((ushort)(_position - start)));

    /// <summary>Sets nlmsg_len; returns the message's length.</summary>
    public int EndMessage()
    {
        if (_messageStart < 0) throw new InvalidOperationException("no message is open");
        int length = _position - _messageStart;
        MemoryMarshal.Write(_buffer[_messageStart..], (uint)length);
        _messageStart = -1;
        return length;
    }

    private Span<byte> BeginAttribute(ushort type, int payloadLength)
    {
        int length = Nl.AttributeHeaderSize + payloadLength;
        var a = Reserve(Nl.Align(length));
        MemoryMarshal.Write(a, checked((ushort)length)); // nla_len excludes the padding
        MemoryMarshal.Write(a[2..], type);
        a[length..].Clear();
        return a.Slice(Nl.AttributeHeaderSize, payloadLength);
    }

    private Span<byte> Reserve(int length)
    {
        if (_position + length > _buffer.Length) throw new NetlinkBufferTooSmallException();
        var s = _buffer.Slice(_position, length);
        _position += length;
        return s;
    }
}

/// <summary>One netlink message of a datagram; <see cref="Payload"/> excludes the nlmsghdr.</summary>
public readonly ref struct NetlinkMessage
{
    public NetlinkMessage(ushort type, ushort flags, uint sequence, uint portId, ReadOnlySpan<byte> payload)
    {
        Type = type;
        Flags = flags;
        Sequence = sequence;
        PortId = portId;
        Payload = payload;
    }

    public ushort Type { get; }
    public ushort Flags { get; }
    public uint Sequence { get; }
    public uint PortId { get; }
    public ReadOnlySpan<byte> Payload { get; }

    /// <summary>NLMSG_ERROR carries struct nlmsgerr { int error; nlmsghdr msg; }: 0 is an ACK, else −errno.</summary>
    public bool TryGetError(out int error)
    {
        error = 0;
        if (Type != Nl.TypeError || Payload.Length < 4) return false;
        error = MemoryMarshal.Read<int>(Payload);
        return true;
    }
}

/// <summary>Walks the messages of one received datagram.</summary>
public ref struct NetlinkMessageReader
{
    private ReadOnlySpan<byte> _rest;

    public NetlinkMessageReader(ReadOnlySpan<byte> datagram) => _rest = datagram;

    /// <summary>Set when a header's length was impossible; reading stops there.</summary>
    public bool Malformed { get; private set; }

    public bool TryRead(out NetlinkMessage message)
    {
        message = default;
        if (_rest.Length < Nl.HeaderSize)
        {
            Malformed |= _rest.Length != 0;
            return false;
        }
        uint length = MemoryMarshal.Read<uint>(_rest);
        if (length < Nl.HeaderSize || length > _rest.Length)
        {
            Malformed = true;
            _rest = default;
            return false;
        }
        message = new NetlinkMessage(
            MemoryMarshal.Read<ushort>(_rest[4..]),
            MemoryMarshal.Read<ushort>(_rest[6..]),
            MemoryMarshal.Read<uint>(_rest[8..]),
            MemoryMarshal.Read<uint>(_rest[12..]),
            _rest[Nl.HeaderSize..(int)length]);
        int next = Math.Min(Nl.Align((int)length), _rest.Length);
        _rest = _rest[next..];
        return true;
    }
}

/// <summary>Walks a run of attributes (the body of a message, or of a nested attribute).</summary>
public ref struct NetlinkAttributeReader
{
    private ReadOnlySpan<byte> _rest;

    public NetlinkAttributeReader(ReadOnlySpan<byte> attributes) => _rest = attributes;

    public bool Malformed { get; private set; }

    /// <summary>Next attribute; <paramref name="type"/> has the NESTED/NET_BYTEORDER flag bits removed.</summary>
    public bool TryRead(out ushort type, out ReadOnlySpan<byte> value)
    {
        type = 0;
        value = default;
        if (_rest.Length < Nl.AttributeHeaderSize)
        {
            Malformed |= _rest.Length != 0;
            return false;
        }
        ushort length = MemoryMarshal.Read<ushort>(_rest);
        if (length < Nl.AttributeHeaderSize || length > _rest.Length)
        {
            Malformed = true;
            _rest = default;
            return false;
        }
        type = (ushort)(MemoryMarshal.Read<ushort>(_rest[2..]) & Nl.AttributeTypeMask);
        value = _rest[Nl.AttributeHeaderSize..length];
        _rest = _rest[Math.Min(Nl.Align(length), _rest.Length)..];
        return true;
    }

    public static bool TryU8(ReadOnlySpan<byte> value, out byte v)
    {
        v = value.Length >= 1 ? value[0] : (byte)0;
        return value.Length >= 1;
    }

    public static bool TryU16(ReadOnlySpan<byte> value, out ushort v) => MemoryMarshal.TryRead(value, out v);

    public static bool TryU32(ReadOnlySpan<byte> value, out uint v) => MemoryMarshal.TryRead(value, out v);

    public static bool TryS32(ReadOnlySpan<byte> value, out int v) => MemoryMarshal.TryRead(value, out v);

    public static bool TryU64(ReadOnlySpan<byte> value, out ulong v) => MemoryMarshal.TryRead(value, out v);

    /// <summary>A string attribute up to its first NUL (the kernel NUL-terminates; be lenient if it did not).</summary>
    public static string String(ReadOnlySpan<byte> value)
    {
        int nul = value.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? value : value[..nul]);
    }
}

/// <summary>A generic netlink message body: genlmsghdr then attributes.</summary>
public readonly ref struct GenlMessage
{
    private GenlMessage(byte command, byte version, ReadOnlySpan<byte> attributes)
    {
        Command = command;
        Version = version;
        Attributes = attributes;
    }

    public byte Command { get; }
    public byte Version { get; }
    public ReadOnlySpan<byte> Attributes { get; }

    public static bool TryParse(ReadOnlySpan<byte> payload, out GenlMessage message)
    {
        message = default;
        if (payload.Length < Nl.GenlHeaderSize) return false;
        message = new GenlMessage(payload[0], payload[1], payload[Nl.GenlHeaderSize..]);
        return true;
    }
}
