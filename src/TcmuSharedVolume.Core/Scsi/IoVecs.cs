namespace TcmuSharedVolume.Scsi;

/// <summary>Copies between the bytes a scatter list describes and one flat buffer: a command's
/// data and its parameter list (<see cref="DataBuffer"/>), an O_DIRECT bounce buffer and the
/// command's segments (Backends/BlockDeviceStore).</summary>
internal static unsafe class IoVecs
{
    /// <summary>From the listed bytes, starting <paramref name="offset"/> bytes into them, to
    /// <paramref name="destination"/>. Returns bytes copied: fewer only where the list ends.</summary>
    public static int CopyOut(ReadOnlySpan<IoVec> segments, long offset, Span<byte> destination)
    {
        fixed (byte* p = destination)
            return Copy(segments, offset, p, destination.Length, intoSegments: false);
    }

    /// <summary>From <paramref name="source"/> into the listed bytes, starting <paramref name="offset"/>
    /// bytes into them. Returns bytes copied: fewer only where the list ends.</summary>
    public static int CopyIn(ReadOnlySpan<IoVec> segments, long offset, ReadOnlySpan<byte> source)
    {
        fixed (byte* p = source)
            return Copy(segments, offset, p, source.Length, intoSegments: true);
    }

    private static int Copy(ReadOnlySpan<IoVec> segments, long offset, byte* flat, int length, bool intoSegments)
    {
        int done = 0;
        long pos = 0;
        foreach (ref readonly var v in segments)
        {
            if (done == length) break;
            long segLen = v.Length;
            if (offset + done >= pos + segLen)
            {
                pos += segLen;
                continue;
            }
            long skip = offset + done - pos;
            int take = (int)Math.Min(segLen - skip, length - done);
            byte* segment = (byte*)v.Base + skip;
            if (intoSegments) Buffer.MemoryCopy(flat + done, segment, take, take);
            else Buffer.MemoryCopy(segment, flat + done, take, take);
            done += take;
            pos += segLen;
        }
        return done;
    }
}
