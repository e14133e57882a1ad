using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Volumes;

/// <summary>
/// A shared volume: one backing store, one identity, one reservation table, many paths.
/// Everything that must be consistent across paths (data, COMPARE AND WRITE atomicity,
/// reservations, unit attentions) lives here.
/// </summary>
public sealed class Volume : ICommandDrain, IDisposable
{
    private readonly Lock _pathsLock = new();
    private VolumePath[] _paths = [];

    public Volume(string backingPath, IBackingStore store, int blockSize, VolumeIdentity identity,
        IReservationStore reservationStore)
        : this(backingPath, store, blockSize, identity, exchange: null) =>
        Reservations = new VolumeReservations(reservationStore, BoundNexuses, this);

    /// <summary>A volume that other target hosts serve too: one reservation table shared through
    /// <paramref name="clusterStore"/> (docs/reservations.md §18), which the volume closes.</summary>
    public Volume(string backingPath, IBackingStore store, int blockSize, VolumeIdentity identity,
        IClusterReservationStore clusterStore)
        : this(backingPath, store, blockSize, identity, clusterStore as IPortGroupExchange)
    {
        _clusterStore = clusterStore;
        Reservations = new VolumeReservations(clusterStore, BoundNexuses, this);
    }

    private Volume(string backingPath, IBackingStore store, int blockSize, VolumeIdentity identity, IPortGroupExchange? exchange)
    {
        if (blockSize is not (512 or 1024 or 2048 or 4096))
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be 512, 1024, 2048 or 4096");
        BackingPath = backingPath;
        Store = store;
        BlockSize = blockSize;
        Identity = identity;
        Reservations = null!; // set by the public constructors
        PortGroups = new PortGroupDirectory(() => Paths, exchange);
    }

    private IEnumerable<ItNexus> BoundNexuses() => Paths.Select(p => p.Nexus).OfType<ItNexus>();

    private readonly IClusterReservationStore? _clusterStore;

    /// <summary>The table shared with other hosts (an RBD volume), or null for a table of this host alone.</summary>
    public IClusterReservationStore? SharedTable => _clusterStore;

    /// <summary>Canonical path of the sparse file or block device; the key that groups backstores.</summary>
    public string BackingPath { get; }

    public IBackingStore Store { get; }

    public int BlockSize { get; }

    /// <summary>Number of logical blocks; the last LBA is BlockCount - 1.</summary>
    public long BlockCount => Store.SizeBytes / BlockSize;

    public VolumeIdentity Identity { get; }

    public VolumeReservations Reservations { get; }

    /// <summary>ALUA: this host's target port group and the other hosts' (REPORT TARGET PORT GROUPS).</summary>
    public PortGroupDirectory PortGroups { get; }

    /// <summary>Serialises COMPARE AND WRITE against every other write of the volume, on every path.
    /// COMPARE AND WRITE takes it through <see cref="EnterCompareAndWrite"/>, which also waits for
    /// the writes that run without a thread (<see cref="BeginAsyncWrite"/>).</summary>
    public ReaderWriterLockSlim WriteOrdering { get; } = new(LockRecursionPolicy.NoRecursion);

    private long _asyncWrites;

    /// <summary>
    /// A write about to start on a store that completes it on its own thread
    /// (<see cref="IAsyncBackingStore"/>): it cannot hold <see cref="WriteOrdering"/>, a lock of
    /// the thread that takes it, for as long as it runs, so it counts itself while holding the
    /// lock for reading. A COMPARE AND WRITE that holds the lock for writing therefore sees every
    /// such write that started before it, and none starts until it is done.
    /// </summary>
    internal void BeginAsyncWrite()
    {
        WriteOrdering.EnterReadLock();
        Interlocked.Increment(ref _asyncWrites);
        WriteOrdering.ExitReadLock();
    }

    /// <summary>The write of <see cref="BeginAsyncWrite"/> completed (or never started).</summary>
    internal void EndAsyncWrite() => Interlocked.Decrement(ref _asyncWrites);

    /// <summary>COMPARE AND WRITE: no other write of the volume runs until <see cref="ExitCompareAndWrite"/>
    /// (SBC-3 5.2: the compare and the write are one atomic operation).</summary>
    internal void EnterCompareAndWrite()
    {
        WriteOrdering.EnterWriteLock();
        var spin = new SpinWait();
        while (Interlocked.Read(ref _asyncWrites) != 0) spin.SpinOnce();
    }

    internal void ExitCompareAndWrite() => WriteOrdering.ExitWriteLock();

    /// <summary>WCE in the Caching mode page; false means every write is written through.</summary>
    public bool WriteCacheEnabled { get; set; } = true;

    /// <summary>D_SENSE in the Control mode page: CHECK CONDITION carries descriptor-format sense.
    /// The transport copies it into <see cref="ScsiCommand.DescriptorSense"/> of every command.</summary>
    public bool DescriptorSense { get; set; }

    /// <summary>The most one READ/WRITE may move even when every ring could carry more: a
    /// larger command would hold data area blocks that the other commands of its ring wait for,
    /// for no gain in throughput.</summary>
    public const int MaxTransferCeilingBytes = 8 << 20;

    private int _maxTransferBytes = MaxTransferCeilingBytes;

    /// <summary>Largest READ/WRITE the volume accepts, in bytes (VPD B0 MAXIMUM TRANSFER LENGTH,
    /// enforced with INVALID FIELD IN CDB): the ceiling, lowered by
    /// <see cref="LimitTransferLength"/> to what the smallest data area of its paths holds.</summary>
    public int MaxTransferBytes
    {
        get => Volatile.Read(ref _maxTransferBytes);
        set => Volatile.Write(ref _maxTransferBytes, value);
    }

    /// <summary>
    /// A path's transport carries at most <paramref name="bytes"/> per command (for TCMU, the
    /// ring's data area: the kernel fails a larger command before it reaches the ring). One
    /// MAXIMUM TRANSFER LENGTH serves every path, since one initiator may reach the volume over
    /// several of them (multipath), so the lowest wins, and a path that joins later can only
    /// lower it. When it does, the nexuses of the other paths may have read the higher value:
    /// they get INQUIRY DATA HAS CHANGED (SPC-4 unit attention 3Fh/03h) to read VPD B0 again.
    /// Returns true if the limit went down.
    /// </summary>
    public bool LimitTransferLength(VolumePath path, long bytes)
    {
        int limit = (int)Math.Clamp(bytes / BlockSize * BlockSize, BlockSize, MaxTransferCeilingBytes);
        int current;
        do
        {
            current = MaxTransferBytes;
            if (limit >= current) return false;
        }
        while (Interlocked.CompareExchange(ref _maxTransferBytes, limit, current) != current);
        Diagnostics.Log.Info($"volume {Identity.UnitSerial}: MAXIMUM TRANSFER LENGTH lowered to {limit} bytes by {path.Name}");
        if (Paths.Any(p => p != path))
            Reservations.AddUnitAttentionForAll(SenseCode.InquiryDataHasChanged, except: path.Nexus);
        return true;
    }

    public IReadOnlyList<VolumePath> Paths => Volatile.Read(ref _paths);

    private int _latchedWriteErrno;

    /// <summary>
    /// The errno of the first failed flush (or write-through write) since the latch was last
    /// cleared; 0 if none. While it is set, every SYNCHRONIZE CACHE and every write-through write
    /// (FUA, or any write with WCE=0) on every path fails with WRITE ERROR.
    /// </summary>
    /// <remarks>
    /// Why a latch, and why until an operator clears it: when fdatasync fails, the kernel has
    /// already marked the dirty pages it could not write clean (or thrown them away), so the
    /// next fdatasync finds nothing to write and succeeds. With the write cache on (WCE=1, the
    /// default) initiators were told GOOD for those writes and rely on a later SYNCHRONIZE CACHE
    /// to make them durable; a database commits by exactly that barrier. Answering GOOD to it
    /// after the failure would confirm data that is gone. The kernel's own answer (errseq)
    /// reports the error once per open file, but here one store serves many initiators on many
    /// paths: the one that would consume a single report is not necessarily the one whose data
    /// was lost. Once data may have been lost, the honest answer stays "not durable" for
    /// everyone until someone who has looked at the data clears the latch
    /// (<see cref="ClearWriteError"/>). Reads and ordinary cached writes go on: the data that
    /// is there can still be read and copied off. The latch lives in memory; a daemon restart
    /// clears it (and the restarted daemon reports a power-on reset to every initiator).
    /// </remarks>
    public int LatchedWriteErrno => Volatile.Read(ref _latchedWriteErrno);

    /// <summary>Records a lost-durability error; true if the latch was clear (the first report).</summary>
    internal bool LatchWriteError(int errno)
    {
        bool first = Interlocked.CompareExchange(ref _latchedWriteErrno, errno != 0 ? errno : 5 /* EIO */, 0) == 0;
        if (first)
            Diagnostics.Log.Error($"volume {Identity.UnitSerial}: a flush failed, written data may be lost; every SYNCHRONIZE CACHE and FUA write now fails until the write error is cleared");
        return first;
    }

    /// <summary>Operator action after checking the data: flushes report the truth again.
    /// Returns the errno that was latched, or 0.</summary>
    public int ClearWriteError()
    {
        int errno = Interlocked.Exchange(ref _latchedWriteErrno, 0);
        if (errno != 0) Diagnostics.Log.Notice($"volume {Identity.UnitSerial}: latched write error cleared");
        return errno;
    }

    /// <summary>
    /// Grows the volume and tells every initiator: CAPACITY DATA HAS CHANGED on the next
    /// command of every nexus (SBC-3 4.7), so that they re-read the capacity.
    /// </summary>
    public void Resize(long newSizeBytes)
    {
        if (newSizeBytes % BlockSize != 0)
            throw new BackingStoreException($"new size {newSizeBytes} is not a multiple of the block size {BlockSize}", 22);
        if (newSizeBytes == Store.SizeBytes) return;
        Store.Resize(newSizeBytes);
        Reservations.AddUnitAttentionForAll(SenseCode.CapacityDataHasChanged);
    }

    public VolumePath AddPath(string name, ItNexus? nexus, string? unboundReason = null)
    {
        var path = new VolumePath(this, name, nexus, unboundReason);
        lock (_pathsLock)
            _paths = [.. _paths, path];
        PathsChanged();
        return path;
    }

    public void RemovePath(VolumePath path)
    {
        lock (_pathsLock)
            _paths = _paths.Where(p => p != path).ToArray();
        PathsChanged();
    }

    /// <summary>A path joined, left, or was bound or unbound: the nexuses and target ports changed.</summary>
    internal void PathsChanged()
    {
        Reservations.PathsChanged();
        PortGroups.PathsChanged();
    }

    /// <summary>
    /// PREEMPT AND ABORT: waits until no command of the given nexuses that may have passed the
    /// reservation gate is still running, so that no write of a fenced node lands after GOOD.
    /// The caller has already published the table that refuses them. Returns false if some are
    /// still running at the deadline (a hung backing store): the caller must not report success.
    /// </summary>
    public bool DrainCommands(IReadOnlyCollection<ItNexus> nexuses, TimeSpan timeout)
    {
        // Pairs with the increment-then-read of CommandSet.Execute (Dekker): the table was
        // published before this fence, the counters are read after it, so a command that read
        // the old table is already counted here.
        Interlocked.MemoryBarrier();
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        foreach (var path in Paths)
        {
            if (path.Nexus is null || !nexuses.Contains(path.Nexus)) continue;
            var spin = new SpinWait();
            while (path.InFlight > 0)
            {
                if (Environment.TickCount64 >= deadline) return false;
                if (spin.NextSpinWillYield) Thread.Sleep(1);
                else spin.SpinOnce();
            }
        }
        return true;
    }

    public void Dispose()
    {
        PortGroups.Dispose(); // withdraws this host's ports while the cluster store still works
        _clusterStore?.Dispose();
        Store.Dispose();
        WriteOrdering.Dispose();
    }
}
