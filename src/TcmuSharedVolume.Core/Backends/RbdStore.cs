using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Backends;

/// <summary>
/// A volume on a Ceph RBD image, through librbd's C API: one cluster connection (rados_t), one
/// I/O context and one open image per store, shared by all of the volume's paths.
/// <para>READ and WRITE of the ring's commands start a librbd aio request and return; librbd's
/// completion callback finishes the command (<see cref="IAsyncBackingStore"/>,
/// RbdStore.Async.cs). Everything else is synchronous per calling thread: it issues one aio
/// request and waits on its own thread for the completion callback, which finds the caller
/// through a per-thread waiter made once (its GCHandle is the completion's argument). Either
/// way a command allocates nothing managed in steady state.</para>
/// <para>librbd's cache is always off (<c>rbd_cache=false</c>): with it, librbd acknowledges a
/// write before the OSDs hold it, and a target must not return GOOD for data that a crash of
/// this process would lose.</para>
/// </summary>
public sealed unsafe partial class RbdStore : IAsyncBackingStore
{
    /// <summary>librbd answers a blocklisted client's requests with -ESHUTDOWN (EBLOCKLISTED).</summary>
    public const int ESHUTDOWN = 108;
    public const int ETIMEDOUT = 110;
    private const int EINVAL = 22;
    private const int EIO = 5;
    private const int EILSEQ = 84;

    /// <summary>
    /// What rbd_aio_compare_and_write accepts in Pacific (16.2.15, measured): exactly one
    /// 512-byte sector at a 512-aligned offset; anything longer or unaligned is -EINVAL.
    /// </summary>
    public const int CompareAndWriteBytes = 512;

    /// <summary>
    /// UNMAP granularity: librbd's own default rbd_discard_granularity_bytes. Smaller discards
    /// work (partial discards are not skipped, see <see cref="Open(RbdLocation)"/>) but free
    /// little; a whole object (usually 4 MiB) frees the most.
    /// </summary>
    private const int DiscardGranularity = 64 << 10;

    /// <summary>GET LBA STATUS looks this far ahead for the end of a run (librbd walks each object in it).</summary>
    private const long AllocationWindowObjects = 16;

    private nint _cluster;
    private nint _ioctx;
    private nint _image;
    private long _size;
    private readonly long _objectSize;
    private int _inFlight;
    private int _status;
    private const int Serving = 0, Closed = 1, Rejoining = 2;
    private int _blocklistReported;
    private readonly Lock _resizeLock = new();
    private readonly Lock _reconnectLock = new();

    private RbdStore(RbdLocation location, nint cluster, nint ioctx, nint image, long size, long objectSize)
    {
        Location = location;
        _cluster = cluster;
        _ioctx = ioctx;
        _image = image;
        _size = size;
        _objectSize = objectSize;
    }

    public RbdLocation Location { get; }

    public long SizeBytes => Volatile.Read(ref _size);

    /// <summary>rbd_aio_discard deallocates (removes, truncates or punches the image's objects).</summary>
    public bool SupportsUnmap => true;

    /// <summary>Discarded ranges read back as zeroes: partial discards zero what they cannot free.</summary>
    public bool UnmapReadsZeroes => true;

    public int UnmapGranularity => DiscardGranularity;

    /// <summary>The image's object size: the unit librbd allocates and frees.</summary>
    public long ObjectSize => _objectSize;

    public static RbdStore Open(string pool, string image, string? cephConf = null, string clientId = RbdLocation.DefaultClientId) =>
        Open(RbdLocation.Create(pool, image, cephConf, clientId));

    /// <summary>
    /// Connects as <c>client.&lt;id&gt;</c> with the given ceph.conf and opens the image's head.
    /// Fails with the errno librados or librbd gave (ENOENT: no such pool or image; EACCES or
    /// EPERM: the client's caps or key; ETIMEDOUT: no monitor answered).
    /// </summary>
    public static RbdStore Open(RbdLocation location)
    {
        nint cluster = 0, ioctx = 0, image = 0;
        try
        {
            Connect(location, &cluster, &ioctx);
            var info = OpenImage(location, ioctx, &image);
            return new RbdStore(location, cluster, ioctx, image, (long)info.Size, (long)info.ObjectSize);
        }
        catch
        {
            Close(cluster, ioctx, image);
            throw;
        }
    }

    /// <summary>A client of the cluster and an I/O context on the image's pool; on failure the caller closes what was made.</summary>
    private static void Connect(RbdLocation location, nint* cluster, nint* ioctx)
    {
        Check(LibRados.rados_create2(cluster, RbdLocation.ClusterName, "client." + location.ClientId, 0), $"create a Ceph client client.{location.ClientId}");
        Check(LibRados.rados_conf_read_file(*cluster, location.CephConf), $"read {location.CephConf ?? "the default ceph.conf"}");
        // A target acknowledges a write only when the OSDs have it (see the class remarks).
        Check(LibRados.rados_conf_set(*cluster, "rbd_cache", "false"), "set rbd_cache=false");
        // librbd skips discards of part of an object by default; UNMAP must zero them so that
        // LBPRZ holds (SBC-3 4.7.4.4: a deallocated block reads as zeroes).
        Check(LibRados.rados_conf_set(*cluster, "rbd_skip_partial_discard", "false"), "set rbd_skip_partial_discard=false");
        Check(LibRados.rados_connect(*cluster), $"connect to the Ceph cluster of {location.CephConf ?? "the default ceph.conf"} as client.{location.ClientId}");
        Check(LibRados.rados_ioctx_create(*cluster, location.Pool, ioctx), $"open pool {location.Pool}");
    }

    private static RbdImageInfo OpenImage(RbdLocation location, nint ioctx, nint* image)
    {
        string where = $"RBD image {location.Pool}/{location.Image}";
        Check(LibRbd.rbd_open(ioctx, location.Image, image, null), $"open {where}");
        RbdImageInfo info;
        Check(LibRbd.rbd_stat(*image, &info, (nuint)sizeof(RbdImageInfo)), $"stat {where}");
        return info;
    }

    private static void Check(int r, string what)
    {
        if (r < 0) throw new BackingStoreException($"cannot {what}: {Describe(-r)}", -r);
    }

    /// <summary>
    /// Raised (once per client connection, on the thread that saw it) when the cluster refused
    /// an operation with -ESHUTDOWN: this client is blocklisted, every further operation fails
    /// until <see cref="Reconnect"/>.
    /// </summary>
    public event Action? Blocklisted;

    /// <summary>A call with this store's client and I/O context, which stay valid until it returns.</summary>
    public delegate T RadosCall<T>(nint cluster, nint ioctx);

    /// <summary>
    /// Runs <paramref name="call"/> on this store's RADOS client (the same client as the data
    /// path, so that blocklisting it fences both). Throws <see cref="BackingStoreException"/>
    /// with ESHUTDOWN while the store rejoins.
    /// </summary>
    public T Rados<T>(RadosCall<T> call)
    {
        Enter();
        try { return call(_cluster, _ioctx); }
        finally { Exit(); }
    }

    /// <summary>Reports -ESHUTDOWN from a call made through <see cref="Rados{T}"/>.</summary>
    public void ReportBlocklisted()
    {
        if (Interlocked.Exchange(ref _blocklistReported, 1) == 0) Blocklisted?.Invoke();
    }

    /// <summary>
    /// After this client was blocklisted: stops serving (every request fails with ESHUTDOWN,
    /// NOT READY on the paths), waits for the requests in flight, builds a new client, runs
    /// <paramref name="beforeServing"/> with it (re-read the reservation table, watch again),
    /// then opens the image again and serves. On failure the store stays stopped; call again.
    /// </summary>
    public void Reconnect(RadosCall<bool> beforeServing)
    {
        lock (_reconnectLock)
        {
            if (Interlocked.CompareExchange(ref _status, Rejoining, Serving) == Closed)
                throw new ObjectDisposedException(nameof(RbdStore));
            var spin = new SpinWait();
            while (Volatile.Read(ref _inFlight) != 0) spin.SpinOnce();
            Close(_cluster, _ioctx, _image);
            _image = _ioctx = _cluster = 0;
            nint cluster = 0, ioctx = 0, image = 0;
            try
            {
                Connect(Location, &cluster, &ioctx);
                beforeServing(cluster, ioctx);
                OpenImage(Location, ioctx, &image);
            }
            catch
            {
                Close(cluster, ioctx, image);
                throw;
            }
            (_cluster, _ioctx, _image) = (cluster, ioctx, image);
            Volatile.Write(ref _blocklistReported, 0);
            Volatile.Write(ref _status, Serving);
        }
    }

    /// <summary>Addresses of this store's client as the OSDs see them (what <c>ceph osd blocklist add</c> takes).</summary>
    public string ClientAddresses
    {
        get
        {
            Enter();
            try
            {
                byte* s;
                int r = LibRados.rados_getaddrs(_cluster, &s);
                if (r < 0) throw Error("getaddrs", -r);
                try { return Marshal.PtrToStringUTF8((nint)s) ?? ""; }
                finally { NativeMemory.Free(s); }
            }
            finally { Exit(); }
        }
    }

    /// <summary>In the OSD, so atomic against every host's writes (see <see cref="CompareAndWriteBytes"/>).</summary>
    public int AtomicCompareAndWriteBytes => CompareAndWriteBytes;

    /// <summary>rbd_aio_compare_and_write: a miscompare is -EILSEQ with the offset of the first differing byte in the request.</summary>
    public long CompareAndWrite(ReadOnlySpan<byte> compare, ReadOnlySpan<byte> write, long offset, bool forceUnitAccess)
    {
        if (compare.Length != CompareAndWriteBytes || write.Length != CompareAndWriteBytes || offset % CompareAndWriteBytes != 0)
            throw new BackingStoreException($"rbd compare and write on {Location}: {compare.Length}+{write.Length} bytes at {offset}; librbd takes exactly one aligned {CompareAndWriteBytes}-byte sector", EINVAL);
        CheckRange(offset, CompareAndWriteBytes);
        using var request = new Request(this);
        nint c = request.NewCompletion();
        ulong mismatch = 0;
        long r;
        // The buffers and the mismatch offset stay pinned until the completion has run.
        fixed (byte* cmp = compare)
        fixed (byte* w = write)
            r = request.Result(c, (int)LibRbd.rbd_aio_compare_and_write(_image, (ulong)offset, CompareAndWriteBytes, cmp, w, c, &mismatch,
                forceUnitAccess ? LibRados.LIBRADOS_OP_FLAG_FADVISE_FUA : 0), "compare and write");
        // librbd gives the offset from the start of the request (measured on 16.2.15).
        if (r == -EILSEQ) return mismatch < CompareAndWriteBytes ? (long)mismatch : 0;
        if (r < 0) throw Error("compare and write", (int)-r);
        return -1;
    }

    /// <summary>The image's metadata value for <paramref name="key"/> (rbd image-meta), or null if it has none.</summary>
    public string? GetMetadata(string key)
    {
        Enter();
        try
        {
            for (nuint size = 256; ; )
            {
                var buffer = new byte[size];
                nuint length = size;
                int r;
                fixed (byte* b = buffer)
                    r = LibRbd.rbd_metadata_get(_image, key, b, &length);
                if (r == -2 /* ENOENT */) return null;
                if (r == -34 /* ERANGE */ && length > size)
                {
                    size = length;
                    continue;
                }
                if (r < 0) throw Error($"get metadata {key}", -r);
                int n = Array.IndexOf(buffer, (byte)0);
                return System.Text.Encoding.UTF8.GetString(buffer, 0, n < 0 ? (int)Math.Min(length, size) : n);
            }
        }
        finally { Exit(); }
    }

    public void SetMetadata(string key, string value)
    {
        Enter();
        try
        {
            int r = LibRbd.rbd_metadata_set(_image, key, value);
            if (r < 0) throw Error($"set metadata {key}", -r);
        }
        finally { Exit(); }
    }

    public void Read(ReadOnlySpan<IoVec> destination, long offset)
    {
        long length = TotalLength(destination);
        CheckRange(offset, length);
        if (length == 0) return;
        using var request = new Request(this);
        nint c = request.NewCompletion();
        int r;
        fixed (IoVec* iov = destination)
            r = LibRbd.rbd_aio_readv(_image, iov, destination.Length, (ulong)offset, c);
        long got = request.Await(c, r, "read");
        if (got != length)
            throw new BackingStoreException($"rbd read on {Location}: {got} of {length} bytes at {offset}", EIO);
    }

    /// <summary>
    /// FUA: a one-segment write carries LIBRADOS_OP_FLAG_FADVISE_FUA (rbd_aio_write2); librbd has
    /// no vectored write with op flags, so a FUA write of several segments is followed by a flush.
    /// With the cache off both only return once the OSDs hold the data.
    /// </summary>
    public void Write(ReadOnlySpan<IoVec> source, long offset, bool forceUnitAccess)
    {
        long length = TotalLength(source);
        CheckRange(offset, length);
        if (length == 0) return;
        using var request = new Request(this);
        nint c = request.NewCompletion();
        int r;
        if (source.Length == 1)
        {
            r = LibRbd.rbd_aio_write2(_image, (ulong)offset, (nuint)source[0].Length, (byte*)source[0].Base, c,
                forceUnitAccess ? LibRados.LIBRADOS_OP_FLAG_FADVISE_FUA : 0);
            request.Await(c, r, "write");
            return;
        }
        fixed (IoVec* iov = source)
            r = LibRbd.rbd_aio_writev(_image, iov, source.Length, (ulong)offset, c);
        request.Await(c, r, "write");
        if (forceUnitAccess) request.Flush();
    }

    public void Read(Span<byte> destination, long offset) => OneBuffer.Read(this, destination, offset);

    public void Write(ReadOnlySpan<byte> source, long offset, bool forceUnitAccess) =>
        OneBuffer.Write(this, source, offset, forceUnitAccess);

    public void Flush()
    {
        using var request = new Request(this);
        request.Flush();
    }

    public void Unmap(long offset, long length)
    {
        CheckRange(offset, length);
        if (length == 0) return;
        using var request = new Request(this);
        nint c = request.NewCompletion();
        request.Await(c, LibRbd.rbd_aio_discard(_image, (ulong)offset, (ulong)length, c), "discard");
    }

    public void WriteZeroes(long offset, long length)
    {
        CheckRange(offset, length);
        if (length == 0) return;
        using var request = new Request(this);
        nint c = request.NewCompletion();
        request.Await(c, LibRbd.rbd_aio_write_zeroes(_image, (ulong)offset, (nuint)length, c, 0, 0), "write zeroes");
    }

    /// <summary>
    /// From rbd_diff_iterate2 since the image was made (with the object map when the image has
    /// fast-diff, else by asking each object), looking at most <see cref="AllocationWindowObjects"/>
    /// objects ahead. Ranges that librbd reports as data are mapped, the rest deallocated.
    /// </summary>
    public AllocationState GetAllocation(long offset, out long runLength)
    {
        long size = SizeBytes;
        if ((ulong)offset >= (ulong)size) throw new ArgumentOutOfRangeException(nameof(offset));
        long windowEnd = Math.Min(size, offset + AllocationWindowObjects * _objectSize);
        var run = new ExtentRun { RunStart = -1 };
        Enter();
        try
        {
            int r = LibRbd.rbd_diff_iterate2(_image, null, (ulong)offset, (ulong)(windowEnd - offset), 1, 0, &OnExtent, (nint)(&run));
            if (r < 0) throw Error("diff iterate", -r);
        }
        finally { Exit(); }

        if (run.RunStart < 0 || run.RunStart >= windowEnd)
        {
            runLength = windowEnd - offset;
            return AllocationState.Deallocated;
        }
        if (run.RunStart > offset)
        {
            runLength = run.RunStart - offset;
            return AllocationState.Deallocated;
        }
        runLength = Math.Min(run.RunEnd, windowEnd) - offset;
        return AllocationState.Mapped;
    }

    private struct ExtentRun
    {
        public long RunStart;
        public long RunEnd;
        public bool Ended;
    }

    /// <summary>rbd_diff_iterate2 callback: extents come in offset order; keeps the first run of data.</summary>
    [UnmanagedCallersOnly]
    private static int OnExtent(ulong offset, nuint length, int exists, nint arg)
    {
        var run = (ExtentRun*)arg;
        if (exists == 0 || run->Ended) return 0;
        long start = (long)offset, end = (long)offset + (long)length;
        if (run->RunStart < 0)
        {
            run->RunStart = start;
            run->RunEnd = end;
        }
        else if (start <= run->RunEnd) run->RunEnd = Math.Max(run->RunEnd, end);
        else run->Ended = true;
        return 0;
    }

    /// <summary>
    /// Grows the image with rbd_resize. An image already grown (<c>rbd resize</c> by the
    /// administrator, or another host) is only taken at its new size. Shrinking is refused: the
    /// initiators' data behind the new end would be lost.
    /// </summary>
    public void Resize(long newSizeBytes)
    {
        lock (_resizeLock)
        {
            long current = SizeBytes;
            if (newSizeBytes == current) return;
            if (newSizeBytes < current)
                throw new BackingStoreException($"refusing to shrink the volume from {current} to {newSizeBytes} bytes: data behind the new end would be lost", EINVAL);
            Enter();
            try
            {
                ulong imageSize;
                int r = LibRbd.rbd_get_size(_image, &imageSize);
                if (r < 0) throw Error("get size", -r);
                if ((long)imageSize < newSizeBytes)
                {
                    r = LibRbd.rbd_resize(_image, (ulong)newSizeBytes);
                    if (r < 0) throw Error("resize", -r);
                }
            }
            finally { Exit(); }
            Volatile.Write(ref _size, newSizeBytes);
        }
    }

    /// <summary>
    /// Waits for the request just issued (<paramref name="issued"/> is what the rbd_aio_* call
    /// returned) and returns its result; a negative one becomes a <see cref="BackingStoreException"/>.
    /// </summary>
    private long Await(Waiter waiter, nint completion, int issued, string what)
    {
        if (issued < 0)
        {
            // Never queued: the callback will not run.
            LibRbd.rbd_aio_release(completion);
            throw Error(what, -issued);
        }
        long r = waiter.Wait();
        if (r < 0) throw Error(what, (int)-r);
        return r;
    }

    private BackingStoreException Error(string what, int errno)
    {
        if (errno == ESHUTDOWN) ReportBlocklisted();
        return new($"rbd {what} on {Location}: {Describe(errno)}", errno);
    }

    /// <summary>strerror, and what -ESHUTDOWN means from librbd: the cluster fenced this client.</summary>
    public static string Describe(int errno) => errno switch
    {
        ESHUTDOWN => "client blocklisted by the Ceph cluster (ESHUTDOWN): this host was fenced, and must reconnect before it serves again",
        ETIMEDOUT => "the Ceph cluster did not answer in time (ETIMEDOUT)",
        _ => $"{Libc.ErrorMessage(errno)} (errno {errno})",
    };

    private static long TotalLength(ReadOnlySpan<IoVec> iov)
    {
        long n = 0;
        foreach (ref readonly var v in iov) n += v.Length;
        return n;
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > SizeBytes - length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"range {offset}+{length} outside the store");
    }

    // Requests hold the image open: Dispose waits for them before rbd_close, so a late command
    // gets ObjectDisposedException instead of using a closed image.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Enter()
    {
        Interlocked.Increment(ref _inFlight);
        int status = Volatile.Read(ref _status);
        if (status != Serving)
        {
            Interlocked.Decrement(ref _inFlight);
            throw status == Closed
                ? new ObjectDisposedException(nameof(RbdStore))
                : new BackingStoreException($"rbd on {Location}: {Describe(ESHUTDOWN)}; rejoining", ESHUTDOWN);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Exit() => Interlocked.Decrement(ref _inFlight);

    public void Dispose()
    {
        lock (_reconnectLock)
        {
            if (Interlocked.Exchange(ref _status, Closed) == Closed) return;
            var spin = new SpinWait();
            while (Volatile.Read(ref _inFlight) != 0) spin.SpinOnce();
            Close(_cluster, _ioctx, _image);
            _image = _ioctx = _cluster = 0;
            FreeAsyncRequests();
        }
    }

    /// <summary>In the order librbd and librados need: the image, its I/O context, then the cluster.</summary>
    private static void Close(nint cluster, nint ioctx, nint image)
    {
        if (image != 0) LibRbd.rbd_close(image);
        if (ioctx != 0) LibRados.rados_ioctx_destroy(ioctx);
        if (cluster != 0) LibRados.rados_shutdown(cluster);
    }

    /// <summary>
    /// One asynchronous request to the image: holds it open (<see cref="Enter"/>) until disposed
    /// and waits on this thread's <see cref="Waiter"/>. A ref struct: a request allocates nothing.
    /// </summary>
    private readonly ref struct Request
    {
        private readonly RbdStore _store;
        private readonly Waiter _waiter;

        public Request(RbdStore store)
        {
            store.Enter();
            _store = store;
            try { _waiter = Waiter.ForThisThread; }
            catch { store.Exit(); throw; }
        }

        public nint NewCompletion() => _waiter.NewCompletion();

        /// <summary>Like <see cref="Await"/>, but a negative result of the request is returned, not thrown.</summary>
        public long Result(nint completion, int issued, string what)
        {
            if (issued < 0)
            {
                LibRbd.rbd_aio_release(completion); // never queued: the callback will not run
                throw _store.Error(what, -issued);
            }
            return _waiter.Wait();
        }

        /// <summary>See <see cref="RbdStore.Await"/>.</summary>
        public long Await(nint completion, int issued, string what) => _store.Await(_waiter, completion, issued, what);

        public void Flush()
        {
            nint c = _waiter.NewCompletion();
            Await(c, LibRbd.rbd_aio_flush(_store._image, c), "flush");
        }

        public void Dispose() => _store.Exit();
    }

    /// <summary>
    /// One per worker thread, made on its first request and kept: the event the completion
    /// callback sets and the result it leaves. Its GCHandle (the completion's argument) is never
    /// freed, as the thread's buffers are not: worker threads live as long as the daemon.
    /// </summary>
    private sealed class Waiter
    {
        [ThreadStatic] private static Waiter? t_waiter;

        private readonly ManualResetEventSlim _done = new(false);
        private readonly nint _handle;
        private long _result;

        private Waiter() => _handle = GCHandle.ToIntPtr(GCHandle.Alloc(this));

        public static Waiter ForThisThread => t_waiter ??= new Waiter();

        /// <summary>A completion whose callback wakes this thread; librbd frees it in the callback.</summary>
        public nint NewCompletion()
        {
            _done.Reset();
            nint c;
            int r = LibRbd.rbd_aio_create_completion(_handle, &OnComplete, &c);
            if (r < 0) throw new BackingStoreException($"rbd_aio_create_completion: {Describe(-r)}", -r);
            return c;
        }

        public long Wait()
        {
            _done.Wait();
            return Volatile.Read(ref _result);
        }

        /// <summary>
        /// Runs on a librbd thread. Takes the result and releases the completion here (librbd
        /// allows it), so the waiting thread never touches a completion that librbd is finishing.
        /// </summary>
        [UnmanagedCallersOnly]
        private static void OnComplete(nint completion, nint arg)
        {
            long r = LibRbd.rbd_aio_get_return_value(completion);
            LibRbd.rbd_aio_release(completion);
            var waiter = (Waiter)GCHandle.FromIntPtr(arg).Target!;
            Volatile.Write(ref waiter._result, r);
            waiter._done.Set();
        }
    }
}
