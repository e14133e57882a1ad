using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Scsi;

/// <summary>One segment of a command's data, laid out exactly like <c>struct iovec</c> so that
/// a list of them can go straight to preadv/pwritev.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoVec
{
    public nint Base;
    public nint Length;

    public IoVec(nint @base, nint length)
    {
        Base = @base;
        Length = length;
    }
}

/// <summary>
/// The data of one command: a scatter list over memory that the transport owns (for TCMU, the
/// data area of the ring's mmap). Data-Out already holds the initiator's bytes; Data-In is
/// where the answer goes. Only these bytes may be touched: outside them the TCMU data area can
/// be unmapped and an access would SIGBUS the daemon.
/// </summary>
public readonly unsafe struct DataBuffer
{
    private readonly IoVec* _segments;
    private readonly int _count;

    public DataBuffer(IoVec* segments, int count, long length)
    {
        _segments = segments;
        _count = count;
        Length = length;
    }

    public static DataBuffer Empty => default;

    /// <summary>Total bytes: the fabric's expected transfer length.</summary>
    public long Length { get; }

    public ReadOnlySpan<IoVec> Segments => new(_segments, _count);

    /// <summary>
    /// The segments covering [offset, offset+length), trimmed, written into <paramref name="scratch"/>.
    /// Lets a backend do one preadv/pwritev for a part of the buffer without allocating.
    /// Returns fewer bytes than asked when the buffer is shorter.
    /// </summary>
    public ReadOnlySpan<IoVec> GetRange(long offset, long length, Span<IoVec> scratch, out long covered)
    {
        int n = 0;
        covered = 0;
        long pos = 0;
        for (int i = 0; i < _count && length > 0; i++)
        {
            long segLen = _segments[i].Length;
            if (offset >= pos + segLen)
            {
                pos += segLen;
                continue;
            }
            long skip = offset > pos ? offset - pos : 0;
            long take = Math.Min(segLen - skip, length);
            if (n == scratch.Length) break;
            scratch[n++] = new IoVec(_segments[i].Base + (nint)skip, (nint)take);
            covered += take;
            length -= take;
            offset += take;
            pos += segLen;
        }
        return scratch.Slice(0, n);
    }

    /// <summary>Copies from the buffer, starting at <paramref name="offset"/>; returns bytes copied.</summary>
    public int CopyTo(long offset, Span<byte> destination) =>
        IoVecs.CopyOut(new ReadOnlySpan<IoVec>(_segments, _count), offset, destination);

    /// <summary>Copies into the buffer, starting at <paramref name="offset"/>; returns bytes copied.</summary>
    public int CopyFrom(long offset, ReadOnlySpan<byte> source) =>
        IoVecs.CopyIn(new ReadOnlySpan<IoVec>(_segments, _count), offset, source);

    /// <summary>Zeroes [offset, offset+length) of the buffer.</summary>
    public void Clear(long offset, long length)
    {
        long pos = 0;
        long end = Math.Min(Length, offset + length);
        for (int i = 0; i < _count && offset < end; i++)
        {
            long segLen = _segments[i].Length;
            if (offset >= pos + segLen)
            {
                pos += segLen;
                continue;
            }
            long skip = offset - pos;
            long take = Math.Min(segLen - skip, end - offset);
            NativeMemory.Clear((byte*)_segments[i].Base + skip, (nuint)take);
            offset += take;
            pos += segLen;
        }
    }
}
