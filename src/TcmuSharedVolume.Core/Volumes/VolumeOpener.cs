using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Reservations;

namespace TcmuSharedVolume.Volumes;

/// <summary>Two disks would have one identity (and one reservation state): the second is refused.</summary>
public sealed class VolumeConflictException(string message) : IOException(message);

/// <summary>
/// Turns a backstore's config into its <see cref="Volume"/>: the one already open for the same
/// disk, or a newly opened one with its identity and reservation state. Paths are grouped by what
/// they open (<see cref="BackingObjectKey"/>), never by how they are spelled. Called from one
/// thread (the daemon's control thread).
/// </summary>
public sealed class VolumeOpener
{
    private readonly string _stateDirectory;
    private readonly VolumeIdentityStore _identities;
    private readonly Dictionary<BackingObjectKey, Volume> _open = new();
    private readonly Func<IBackingStore, IBackingStore> _wrapStore;

    /// <param name="wrapStore">Sees every store opened (tests put a gated or failing store around it).</param>
    public VolumeOpener(string stateDirectory, IReservationFileSystem? fileSystem = null, Func<IBackingStore, IBackingStore>? wrapStore = null)
    {
        _stateDirectory = stateDirectory;
        _wrapStore = wrapStore ?? (s => s);
        _identities = new VolumeIdentityStore(stateDirectory, fileSystem);
    }

    public VolumeIdentityStore Identities => _identities;

    /// <summary>
    /// The volume of <paramref name="config"/>'s backing path. <paramref name="isServing"/> says
    /// whether a volume handed out earlier is still in use (its owner disposes volumes whose last
    /// path went away; those are forgotten here). Throws <see cref="IOException"/> (a
    /// <see cref="BackingStoreException"/>, <see cref="VolumeConflictException"/>…) or
    /// <see cref="InvalidDataException"/> with a reason for the log.
    /// </summary>
    public Volume GetOrOpen(VolumeConfig config, int blockSize, Func<Volume, bool> isServing)
    {
        foreach (var (k, v) in _open.ToArray())
            if (!isServing(v)) _open.Remove(k);

        using var resolved = BackingPath.Resolve(config.Path);
        if (resolved.Key is { } key && _open.TryGetValue(key, out var existing))
        {
            if (config.Serial is { } s && s != existing.Identity.UnitSerial)
                Log.Warning($"{config.Path}: serial={s} ignored, the disk already serves as {existing.Identity.UnitSerial} through {existing.BackingPath}");
            else if (config.Serial is null)
                RecordAlias(config.Path, existing);
            return existing;
        }

        VolumeIdentity identity;
        bool stored;
        string origin;
        if (config.Serial is { } serial)
            (identity, stored, origin) = (new VolumeIdentity(serial), true, "serial=");
        else
            (identity, stored, origin) = _identities.Resolve(config.Path, VolumeConfig.ResolveCanonicalPath(config.Path));

        foreach (var other in _open.Values)
        {
            if (other.Identity.UnitSerial == identity.UnitSerial || other.Identity.NaaLocallyAssigned == identity.NaaLocallyAssigned)
                throw new VolumeConflictException(
                    $"serial {identity.UnitSerial} is already the identity of {other.BackingPath}, another disk: two disks with one " +
                    "identity would share one reservation state and look like one disk to multipath; give this volume another serial= (or none)");
        }

        var store = resolved.Open(new BackingStoreOptions
        {
            CreateSizeBytes = config.SizeBytes,
            Preallocate = config.Preallocate,
            DirectIo = config.Direct,
            DiscardZeroesData = config.DiscardZeroes,
        });
        if (store is BlockDeviceStore { IsDirect: true } device && blockSize % device.LogicalSectorSize != 0)
        {
            // O_DIRECT moves whole logical blocks of the device: a smaller or misaligned SCSI block
            // would fail (EINVAL) on the first single-block write.
            store.Dispose();
            throw new BackingStoreException(
                $"{config.Path}: direct=1 needs hw_block_size to be a multiple of the device's logical block size " +
                $"({device.LogicalSectorSize} bytes), and it is {blockSize}; set hw_block_size={device.LogicalSectorSize} or drop direct=1", 22);
        }
        store = _wrapStore(store);
        Volume volume;
        try
        {
            Directory.CreateDirectory(_stateDirectory);
            var reservations = new FileReservationStore(_stateDirectory, identity.UnitSerial);
            volume = new Volume(resolved.ResolvedPath, store, blockSize, identity, reservations);
        }
        catch
        {
            store.Dispose();
            throw;
        }
        try
        {
            if (!stored) _identities.Save(config.Path, identity, origin);
        }
        catch
        {
            volume.Dispose();
            throw;
        }
        _open[resolved.Key!.Value] = volume;
        return volume;
    }

    /// <summary>A second path to an open disk: its identity is recorded under this path too, so
    /// that it is the same whichever path is adopted first after a restart. A path that already
    /// carries another identity is refused: one disk cannot answer with two.</summary>
    private void RecordAlias(string path, Volume volume)
    {
        var recorded = _identities.Find(path);
        if (recorded is null)
        {
            _identities.Save(path, volume.Identity, $"same disk as {volume.BackingPath}");
            return;
        }
        if (recorded.UnitSerial != volume.Identity.UnitSerial || recorded.NaaLocallyAssigned != volume.Identity.NaaLocallyAssigned)
            throw new VolumeConflictException(
                $"{path} is the disk already served as {volume.Identity.UnitSerial} through {volume.BackingPath}, but serial " +
                $"{recorded.UnitSerial} is recorded for this path ({_identities.FileOf(path)}); one disk cannot have two identities. " +
                "If the path now names that disk on purpose, remove the record");
    }
}
