using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Backends;

/// <summary>
/// Positional scatter/gather I/O on a file descriptor that always transfers the whole range:
/// retries EINTR, continues after short transfers, and turns errors into
/// <see cref="BackingStoreException"/>. Shared by the file and the block device stores.
/// </summary>
internal static unsafe class FileDescriptorIo
{
    /// <summary>Linux IOV_MAX: the most iovecs one preadv/pwritev accepts.</summary>
    public const int IovMax = 1024;

    /// <summary>Set once pwritev2(RWF_DSYNC) has been refused (old kernel or file system).</summary>
    private static volatile bool s_noPwritev2;

    public static long TotalLength(ReadOnlySpan<IoVec> iov)
    {
        long total = 0;
        foreach (ref readonly var v in iov) total += v.Length;
        return total;
    }

    public static void ReadFully(int fd, ReadOnlySpan<IoVec> iov, long offset)
    {
        long total = TotalLength(iov);
        if (total == 0) return;
        nint n;
        fixed (IoVec* p = iov)
        {
            do n = Libc.preadv(fd, p, Math.Min(iov.Length, IovMax), offset);
            while (n < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR);
        }
        if (n < 0) throw Error("preadv", Marshal.GetLastPInvokeError());
        if (n == total) return;
        // Short read (signal, end of file, or more than IOV_MAX segments): continue on a copy.
        Continue(fd, iov, offset, n, write: false, dsync: false);
    }

    public static void WriteFully(int fd, ReadOnlySpan<IoVec> iov, long offset, bool dsync)
    {
        long total = TotalLength(iov);
        if (total == 0)
        {
            if (dsync) Sync(fd);
            return;
        }
        nint n = WriteOnce(fd, iov, offset, dsync, out bool synced);
        if (n < 0) throw Error("pwritev", Marshal.GetLastPInvokeError());
        if (n != total)
            Continue(fd, iov, offset, n, write: true, dsync);
        else if (dsync && !synced)
            Sync(fd);
    }

    public static void ReadFully(int fd, Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer)
        {
            var v = new IoVec((nint)p, buffer.Length);
            ReadFully(fd, new ReadOnlySpan<IoVec>(&v, 1), offset);
        }
    }

    public static void WriteFully(int fd, ReadOnlySpan<byte> buffer, long offset, bool dsync)
    {
        fixed (byte* p = buffer)
        {
            var v = new IoVec((nint)p, buffer.Length);
            WriteFully(fd, new ReadOnlySpan<IoVec>(&v, 1), offset, dsync);
        }
    }

    public static void Sync(int fd)
    {
        int r;
        do r = Libc.fdatasync(fd);
        while (r < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR);
        if (r < 0) throw Error("fdatasync", Marshal.GetLastPInvokeError());
    }

    /// <summary>One pwritev2(RWF_DSYNC) when durability is asked, so FUA costs one system call;
    /// falls back to pwritev + fdatasync where pwritev2 or the flag is not supported.</summary>
    private static nint WriteOnce(int fd, ReadOnlySpan<IoVec> iov, long offset, bool dsync, out bool synced)
    {
        nint n;
        int count = Math.Min(iov.Length, IovMax);
        fixed (IoVec* p = iov)
        {
            if (dsync && !s_noPwritev2)
            {
                do n = Libc.pwritev2(fd, p, count, offset, Libc.RWF_DSYNC);
                while (n < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR);
                if (n >= 0)
                {
                    synced = true;
                    return n;
                }
                int e = Marshal.GetLastPInvokeError();
                if (e is not (Libc.EOPNOTSUPP or ENOSYS or EINVAL))
                {
                    synced = false;
                    return n;
                }
                s_noPwritev2 = true;
            }
            do n = Libc.pwritev(fd, p, count, offset);
            while (n < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR);
        }
        synced = false;
        return n;
    }

    private const int ENOSYS = 38;
    private const int EINVAL = 22;

    /// <summary>The slow path after a short transfer: copies the remaining iovecs, 128 at a time.</summary>
    private static void Continue(int fd, ReadOnlySpan<IoVec> iov, long offset, long done, bool write, bool dsync)
    {
        Span<IoVec> scratch = stackalloc IoVec[128];
        long pos = offset + done;
        int index = 0;
        long skip = done;
        while (true)
        {
            // Skip what has been transferred.
            while (index < iov.Length && skip >= iov[index].Length)
            {
                skip -= iov[index].Length;
                index++;
            }
            if (index >= iov.Length) break;
            int n = 0;
            long chunk = 0;
            for (int i = index; i < iov.Length && n < scratch.Length; i++, n++)
            {
                long s = i == index ? skip : 0;
                scratch[n] = new IoVec(iov[i].Base + (nint)s, (nint)(iov[i].Length - s));
                chunk += scratch[n].Length;
            }
            nint r;
            fixed (IoVec* p = scratch)
            {
                do r = write ? Libc.pwritev(fd, p, n, pos) : Libc.preadv(fd, p, n, pos);
                while (r < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR);
            }
            if (r < 0) throw Error(write ? "pwritev" : "preadv", Marshal.GetLastPInvokeError());
            if (r == 0) throw new BackingStoreException(write ? "pwritev wrote nothing" : "preadv: end of file inside the volume", Libc.EIO);
            pos += r;
            skip += r;
        }
        if (write && dsync) Sync(fd);
    }

    public static BackingStoreException Error(string call, int errno) =>
        new($"{call}: {Libc.ErrorMessage(errno)}", errno);
}
