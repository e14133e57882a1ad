using System.Buffers.Binary;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// Where in the CDB or parameter list the error is (SPC-4 4.5.2.4.2, sense-key specific
/// field pointer). Byte is the byte offset; Bit is 0-7 or -1 when the whole byte is meant.
/// </summary>
public readonly record struct FieldPointer(bool InCdb, int Byte, int Bit = -1)
{
    public static FieldPointer Cdb(int @byte, int bit = -1) => new(true, @byte, bit);
    public static FieldPointer Parameter(int @byte, int bit = -1) => new(false, @byte, bit);
}

/// <summary>Builds fixed (70h) or descriptor (72h) sense data (SPC-4 4.5.2, 4.5.3).</summary>
public static class SenseData
{
    public const int MaxLength = 96; // TCMU_SENSE_BUFFERSIZE

    /// <summary>Writes sense data into <paramref name="buffer"/> and returns its length.</summary>
    public static int Write(Span<byte> buffer, SenseCode code, bool descriptorFormat,
        FieldPointer? field = null, ulong? information = null)
    {
        buffer.Clear();
        if (descriptorFormat)
        {
            buffer[0] = 0x72;
            buffer[1] = (byte)((byte)code.Key & 0x0F);
            buffer[2] = code.Asc;
            buffer[3] = code.Ascq;
            int n = 8;
            if (information is { } info)
            {
                // Information descriptor (SPC-4 4.5.2.2): type 0, length 0Ah, VALID=1.
                buffer[n] = 0x00;
                buffer[n + 1] = 0x0A;
                buffer[n + 2] = 0x80;
                BinaryPrimitives.WriteUInt64BigEndian(buffer.Slice(n + 4), info);
                n += 12;
            }
            if (field is { } f)
            {
                // Sense key specific descriptor (SPC-4 4.5.2.5): type 2, length 6.
                buffer[n] = 0x02;
                buffer[n + 1] = 0x06;
                WriteFieldPointer(buffer.Slice(n + 4, 3), f);
                n += 8;
            }
            buffer[7] = (byte)(n - 8);
            return n;
        }

        buffer[0] = 0x70;
        buffer[2] = (byte)((byte)code.Key & 0x0F);
        if (information is { } i)
        {
            buffer[0] |= 0x80; // VALID: INFORMATION holds a meaningful value
            BinaryPrimitives.WriteUInt32BigEndian(buffer.Slice(3), (uint)i);
        }
        buffer[7] = 0x0A; // ADDITIONAL SENSE LENGTH: 18-byte sense
        buffer[12] = code.Asc;
        buffer[13] = code.Ascq;
        if (field is { } fp)
            WriteFieldPointer(buffer.Slice(15, 3), fp);
        return 18;
    }

    private static void WriteFieldPointer(Span<byte> sks, FieldPointer f)
    {
        byte b = 0x80; // SKSV
        if (f.InCdb) b |= 0x40; // C/D
        if (f.Bit >= 0) b |= (byte)(0x08 | (f.Bit & 0x07)); // BPV + BIT POINTER
        sks[0] = b;
        BinaryPrimitives.WriteUInt16BigEndian(sks.Slice(1), (ushort)f.Byte);
    }

    /// <summary>Reads key/ASC/ASCQ back from fixed or descriptor sense (for tests and logs).</summary>
    public static SenseCode Parse(ReadOnlySpan<byte> sense)
    {
        if (sense.Length < 4) return SenseCode.NoSense;
        return (sense[0] & 0x7F) switch
        {
            0x72 or 0x73 => new SenseCode((SenseKey)(sense[1] & 0x0F), sense[2], sense[3]),
            0x70 or 0x71 when sense.Length >= 14 => new SenseCode((SenseKey)(sense[2] & 0x0F), sense[12], sense[13]),
            _ => SenseCode.NoSense,
        };
    }
}
