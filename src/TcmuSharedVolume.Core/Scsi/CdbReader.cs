using System.Buffers.Binary;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// Big-endian field reader over a CDB or a parameter list. Bytes beyond the end read as zero,
/// so a short buffer never throws; callers check lengths where the standard says to.
/// </summary>
internal readonly ref struct CdbReader
{
    private readonly ReadOnlySpan<byte> _bytes;

    public CdbReader(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public int Length => _bytes.Length;

    public byte this[int index] => (uint)index < (uint)_bytes.Length ? _bytes[index] : (byte)0;

    public bool Bit(int index, int bit) => (this[index] & (1 << bit)) != 0;

    /// <summary>Bits [high..low] of a byte, shifted down.</summary>
    public int Bits(int index, int high, int low) => (this[index] >> low) & ((1 << (high - low + 1)) - 1);

    public ushort U16(int index) => index + 2 <= _bytes.Length ? BinaryPrimitives.ReadUInt16BigEndian(_bytes.Slice(index)) : (ushort)((this[index] << 8) | this[index + 1]);

    public uint U24(int index) => (uint)((this[index] << 16) | (this[index + 1] << 8) | this[index + 2]);

    public uint U32(int index) => index + 4 <= _bytes.Length ? BinaryPrimitives.ReadUInt32BigEndian(_bytes.Slice(index)) : ((uint)U16(index) << 16) | U16(index + 2);

    public ulong U64(int index) => index + 8 <= _bytes.Length ? BinaryPrimitives.ReadUInt64BigEndian(_bytes.Slice(index)) : ((ulong)U32(index) << 32) | U32(index + 4);

    /// <summary>SPC-4 4.2.5.1: the CDB length that the group code of an operation code implies
    /// (group 3 and 6/7 have none here).</summary>
    public static int LengthOfGroup(byte opcode) => (opcode >> 5) switch
    {
        0 => 6,
        1 or 2 => 10,
        4 => 16,
        5 => 12,
        _ => 0,
    };
}

/// <summary>Writes big-endian fields into a response buffer.</summary>
internal static class Be
{
    public static void U16(Span<byte> b, int at, int v) => BinaryPrimitives.WriteUInt16BigEndian(b.Slice(at), (ushort)v);
    public static void U32(Span<byte> b, int at, uint v) => BinaryPrimitives.WriteUInt32BigEndian(b.Slice(at), v);
    public static void U64(Span<byte> b, int at, ulong v) => BinaryPrimitives.WriteUInt64BigEndian(b.Slice(at), v);

    /// <summary>ASCII, left-aligned, padded with spaces (SPC-4 4.4.1).</summary>
    public static void Ascii(Span<byte> b, int at, int width, string s)
    {
        var field = b.Slice(at, width);
        field.Fill((byte)' ');
        for (int i = 0; i < s.Length && i < width; i++) field[i] = (byte)s[i];
    }
}
