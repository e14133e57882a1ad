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
    {
        if (blockSize is not (512 or 1024 or 2048 or 4096))
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be 512, 1024, 2048 or 4096");
        BackingPath = backingPath;
        Store = store;
        BlockSize = blockSize;
        Identity = identity;
        Reservations = new VolumeReservations(reservationStore, () => Paths.Select(p => p.Nexus).OfType<ItNexus>(), this);
    }

    /// <summary>Canonical path of the sparse file or block device; the key that groups backstores.</summary>
    public string BackingPath { get; }

    public IBackingStore Store { get; }

    public int BlockSize { get; }

    /// <summary>Number of logical blocks; the last LBA is BlockCount - 1.</summary>
    public long BlockCount => Store.SizeBytes / BlockSize;

    public VolumeIdentity Identity { get; }

    public VolumeReservations Reservations { get; }

    /// <summary>Serialises COMPARE AND WRITE against every other write of the volume, on every path.</summary>
    public ReaderWriterLockSlim WriteOrdering { get; } = new(LockRecursionPolicy.NoRecursion);

    /// <summary>WCE in the Caching mode page; false means every write is written through.</summary>
    public bool WriteCacheEnabled { get; set; } = true;

    /// <summary>D_SENSE in the Control mode page: CHECK CONDITION carries descriptor-format sense.
    /// The transport copies it into <see cref="ScsiCommand.DescriptorSense"/> of every command.</summary>
    public bool DescriptorSense { get; set; }

    /// <summary>Largest READ/WRITE the volume accepts, in bytes (VPD B0 MAXIMUM TRANSFER LENGTH).
    /// The transport may lower it to what its data area holds.</summary>
    public int MaxTransferBytes { get; set; } = 8 << 20;

    public IReadOnlyList<VolumePath> Paths => Volatile.Read(ref _paths);

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
        Reservations.PathsChanged();
        return path;
    }

    public void RemovePath(VolumePath path)
    {
        lock (_pathsLock)
            _paths = _paths.Where(p => p != path).ToArray();
        Reservations.PathsChanged();
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
        Store.Dispose();
        WriteOrdering.Dispose();
    }
}
