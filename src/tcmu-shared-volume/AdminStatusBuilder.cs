using System.Globalization;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.DBus;
using TcmuSharedVolume.Reservations;

namespace TcmuSharedVolume.Daemon;

/// <summary>What tsvctl status / pr show / pr clear see, built from the live volumes.</summary>
internal static class AdminStatusBuilder
{
    public static AdminStatus Build(DeviceManager devices)
    {
        var volumes = new List<VolumeStatus>();
        foreach (var v in devices.Volumes)
        {
            var paths = v.Paths.Select(p => new PathStatus(p.Name, p.Nexus?.Initiator.Name, p.Nexus?.Target.Name, p.UnboundReason)
            {
                Counters = Counters(p),
            }).ToList();
            var snap = v.Reservations.Snapshot();
            var regs = snap.Registrations.Select(r => new RegistrationStatus(r.Nexus.Initiator.Name, r.Nexus.Target.Name, Key(r.Key))).ToList();
            PersistentReservationStatus? res = null;
            if (snap.Type is var type and not PersistentReservationType.None)
            {
                bool allRegistrants = type is PersistentReservationType.WriteExclusiveAllRegistrants or PersistentReservationType.ExclusiveAccessAllRegistrants;
                var holder = snap.Registrations.FirstOrDefault(r => r.IsHolder);
                res = new PersistentReservationStatus(type.DisplayName(), allRegistrants ? null : snap.Holder?.Initiator.Name,
                    allRegistrants ? Key(0) : Key(holder?.Key ?? 0));
            }
            volumes.Add(new VolumeStatus(v.BackingPath, v.Identity.UnitSerial, v.Store.SizeBytes, v.BlockSize, paths,
                new ReservationStatus(snap.Generation, snap.Aptpl, regs, res, snap.Spc2Holder?.Initiator.Name)));
        }
        return new AdminStatus(Program.Version, volumes)
        {
            UptimeSeconds = Program.Started.Elapsed.TotalSeconds,
            LatencyBucketBounds = PathMetrics.LatencyBucketBounds,
        };
    }

    public static (bool Ok, string Message) Clear(DeviceManager devices, string volume)
    {
        var v = devices.Volumes.FirstOrDefault(x => x.BackingPath == volume || x.Identity.UnitSerial == volume
            || (Path.IsPathRooted(volume) && x.BackingPath == Path.GetFullPath(volume)));
        if (v is null) return (false, $"no volume {volume} is being served");
        try
        {
            v.Reservations.AdministrativeClear();
        }
        catch (Exception e) when (e is IOException or ReservationStoreException)
        {
            // AdministrativeClear's save fails with IOException (ENOSPC, EIO); nothing changed.
            return (false, $"could not persist the cleared state: {e.Message}");
        }
        Log.Warning($"{v.BackingPath}: reservations and registrations cleared by the administrator");
        return (true, $"cleared reservations and registrations of {v.BackingPath}");
    }

    private static PathCounters Counters(TcmuSharedVolume.Volumes.VolumePath p)
    {
        var m = p.Metrics.Snapshot();
        return new PathCounters(m.Commands, m.ReadBytes, m.WrittenBytes, p.InFlight, m.LatencyBuckets);
    }

    private static string Key(ulong key) => key.ToString("x16", CultureInfo.InvariantCulture);
}
