using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Daemon;

public sealed partial class DeviceManager
{
    private readonly Dictionary<string, Volume> _volumes = new(StringComparer.Ordinal);

    public int VolumeCount => _volumes.Count;

    /// <summary>A snapshot: the D-Bus thread reads it while the control thread adopts devices.</summary>
    public Volume[] Volumes
    {
        get { lock (_volumes) return [.. _volumes.Values]; }
    }

    private VolumeOpener? _volumeOpener;

    /// <summary>
    /// The volume of the config's disk: paths are grouped by what they open (a file's st_dev and
    /// st_ino, a block device's st_rdev), so a hard link or a second device node is the same
    /// volume; the identity is kept in the state directory, and a second disk with a serial
    /// already in use is refused (<see cref="VolumeOpener"/>).
    /// </summary>
    private Volume GetOrOpenVolume(VolumeConfig config, int blockSize)
    {
        if (config.Rbd is not null) return GetOrOpenRbdVolume(config, blockSize);
        _volumeOpener ??= new VolumeOpener(_stateDirectory, wrapStore: _opener.WrapStore);
        var volume = _volumeOpener.GetOrOpen(config, blockSize,
            v => _volumes.TryGetValue(v.BackingPath, out var same) && ReferenceEquals(same, v));
        if (_volumes.TryGetValue(volume.BackingPath, out var other) && !ReferenceEquals(other, volume))
        {
            // A file that was deleted while served and created anew at the same path: another disk.
            volume.Dispose();
            throw new VolumeConflictException($"{volume.BackingPath} is served already as another disk ({other.Identity.UnitSerial}), which was replaced on disk; remove its backstores first");
        }
        lock (_volumes) _volumes[volume.BackingPath] = volume;
        return volume;
    }

    /// <summary>
    /// An RBD image is one volume per pool/image name on this host, and may be served by other
    /// hosts at the same time: its identity is kept in the image's metadata (made once by the
    /// first host, from serial= if given) and its reservation table is the shared one in RADOS
    /// (docs/reservations.md §18), never a file of this host.
    /// </summary>
    private Volume GetOrOpenRbdVolume(VolumeConfig config, int blockSize)
    {
        var rbd = config.Rbd!;
        if (_volumes.TryGetValue(rbd.Path, out var existing))
        {
            if (config.Serial is { } s && s != existing.Identity.UnitSerial)
                Log.Warning($"{rbd.Path}: serial={s} ignored, the volume already serves as {existing.Identity.UnitSerial}");
            return existing;
        }
        var image = RbdStore.Open(rbd);
        IBackingStore? store = null;
        RbdReservationStore? table = null;
        try
        {
            var candidate = config.Serial is { } serial ? new VolumeIdentity(serial) : VolumeIdentity.NewRandom(Guid.NewGuid());
            var identity = RbdReservationStore.EstablishIdentity(image, candidate);
            if (config.Serial is { } given && given != identity.UnitSerial)
                Log.Warning($"{rbd.Path}: serial={given} ignored, the image's metadata names it {identity.UnitSerial} on every host");
            foreach (var other in _volumes.Values)
                if (other.Identity.UnitSerial == identity.UnitSerial)
                    throw new VolumeConflictException($"serial {identity.UnitSerial} is already the identity of {other.BackingPath}, another disk (a copied image keeps its {RbdReservationStore.IdentityKey} metadata: remove it from the copy)");
            store = _opener.WrapStore(image);
            table = new RbdReservationStore(image)
            {
                HostId = _configfs.HostNumber,
                // The last table this host loaded, beside the .pr files: after a restart, the
                // unit attentions of changes made meanwhile are raised from it (reservations.md §18).
                LastKnownPath = Path.Combine(_stateDirectory, Path.ChangeExtension(FileReservationStore.FileName(identity.UnitSerial), ".shared")),
            };
            var volume = new Volume(rbd.Path, store, blockSize, identity, table);
            lock (_volumes) _volumes[rbd.Path] = volume;
            return volume;
        }
        catch
        {
            table?.Dispose();
            (store ?? image).Dispose();
            throw;
        }
    }

    /// <summary>
    /// Closes the volume (its backing store's fd) once nothing uses it. Its paths are its
    /// reference count: a path stays in the volume until its ring is idle (see <see cref="Remove"/>),
    /// so the fd is closed after the last command of the last path has completed, never under a
    /// command still in pwritev (a closed fd number may be reused by the next open, and the
    /// write would land in another file).
    /// </summary>
    private void CloseVolumeIfUnused(Volume volume)
    {
        if (volume.Paths.Count != 0) return;
        lock (_volumes) _volumes.Remove(volume.BackingPath);
        volume.Dispose();
    }

    /// <summary>Makes every volume's data durable (on stop).</summary>
    public void FlushAll()
    {
        foreach (var v in _volumes.Values)
        {
            try { v.Store.Flush(); }
            catch (BackingStoreException e) { Log.Error($"{v.BackingPath}: final flush failed: {e.Message}"); }
        }
    }
}
