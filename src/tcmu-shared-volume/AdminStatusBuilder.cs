using System.Globalization;
using TcmuSharedVolume.Backends;
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
                new ReservationStatus(snap.Generation, snap.Aptpl, regs, res, snap.Spc2Holder?.Initiator.Name))
            {
                Shared = Shared(v),
            });
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

    /// <summary>The version of an RBD volume's shared table and the hosts recorded in its object (a ping of their watches: up to a second).</summary>
    private static SharedTableStatus? Shared(TcmuSharedVolume.Volumes.Volume v)
    {
        if (v.SharedTable is not RbdReservationStore table) return null;
        IReadOnlyList<RbdHost> hosts = [];
        string? error = null;
        try
        {
            hosts = table.Hosts();
        }
        catch (Exception e) when (e is ClusterTableUnavailableException or ReservationStoreException or BackingStoreException)
        {
            error = e.Message;
        }
        return new SharedTableStatus(v.Reservations.ClusterVersion, table.TableObject, hosts.Select(h => new TableHostStatus(
            h.Record.ClientId, h.Record.HostId, h.Record.HostName,
            h.Record.Since?.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture), h.Record.Address,
            h.State switch { RbdHostState.Serving => "serving", RbdHostState.NotAnswering => "not answering", _ => "gone" },
            h.IsThisHost)).ToList())
        {
            HostsError = error,
        };
    }

    private static PathCounters Counters(TcmuSharedVolume.Volumes.VolumePath p)
    {
        var m = p.Metrics.Snapshot();
        return new PathCounters(m.Commands, m.ReadBytes, m.WrittenBytes, p.InFlight, m.LatencyBuckets);
    }

    private static string Key(ulong key) => key.ToString("x16", CultureInfo.InvariantCulture);
}
