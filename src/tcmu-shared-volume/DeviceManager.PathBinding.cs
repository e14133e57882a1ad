using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.Configfs;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Daemon;

public sealed partial class DeviceManager
{
    /// <summary>How often a bound path's binding is resolved again from configfs (an ACL added
    /// later, demo mode switched on): one configfs walk per path per interval.</summary>
    public static readonly TimeSpan RebindInterval = TimeSpan.FromSeconds(5);

    private readonly Lock _bindLock = new();

    /// <summary>
    /// Binds a path whose nexus was unknown (targetcli creates the backstore before the LUN and
    /// ACL). Any thread. The tick is rate-limited to one configfs walk per path per second; a
    /// reservation command arriving on the unbound path forces one, so that a PR OUT sent right
    /// after the ACL appeared is not refused.
    /// </summary>
    private void TryBind(Device device, bool force = false)
    {
        if (device.Path.Nexus is not null) return;
        long now = Environment.TickCount64;
        if (!force && now < Volatile.Read(ref device.NextBindAttempt)) return;
        lock (_bindLock)
        {
            if (device.Path.Nexus is not null || (!force && now < device.NextBindAttempt)) return;
            device.NextBindAttempt = now + 1000;
            NexusBinding binding;
            try
            {
                binding = _configfs.ResolveNexus(device.Backstore.HbaIndex, device.Backstore.Name, device.Config);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                device.Path.SetUnboundReason($"configfs: {e.Message}");
                return;
            }
            if (binding.Nexus is { } nexus)
            {
                if (device.Pinned is { } pinned && !pinned.Equals(nexus))
                {
                    device.Path.SetUnboundReason(Moved(nexus, pinned));
                    return;
                }
                device.Binding = binding;
                device.Pinned = nexus;
                device.NextRebind = now + (long)RebindInterval.TotalMilliseconds;
                if (device.Path.Bind(nexus)) Log.Notice($"{device.Key}: bound to {nexus}");
            }
            else if (binding.UnboundReason is { } r)
            {
                device.Path.SetUnboundReason(r);
            }
        }
    }

    /// <summary>
    /// Resolves a bound path's binding again (control thread, once per <see cref="RebindInterval"/>):
    /// LIO's configuration may have changed since the path was bound. An ACL added later that maps
    /// the same LUN, or demo mode switched on, lets a second initiator send commands into this
    /// ring, which would then act with the bound initiator's registrations. A path that can no
    /// longer be pinned to exactly one I_T nexus is unbound: it keeps serving I/O as an
    /// unregistered nexus, PR OUT on it is refused, and the registrations made through it stay in
    /// the table (they belong to the initiator, which may come back). A path that now resolves to
    /// another nexus is unbound too, with the reason logged, and stays unbound: it is bound again
    /// only to the nexus it first served (after an ambiguity is resolved, say), never switched to
    /// another initiator, whose commands would then use the first one's registrations.
    /// Returns whether the path was unbound.
    /// </summary>
    private bool CheckBinding(Device device, bool force = false)
    {
        long now = Environment.TickCount64;
        if (!force && now < device.NextRebind) return false;
        lock (_bindLock)
        {
            device.NextRebind = now + (long)RebindInterval.TotalMilliseconds;
            if (device.Path.Nexus is not { } current) return false;
            NexusBinding binding;
            try
            {
                binding = _configfs.ResolveNexus(device.Backstore.HbaIndex, device.Backstore.Name, device.Config);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // configfs changing under targetcli's hands: look again at the next interval.
                Log.Debug($"{device.Key}: re-resolving the binding: {e.Message}");
                return false;
            }
            if (binding.Nexus is { } nexus && nexus.Equals(current)) return false;
            string reason = binding.Nexus is { } other
                ? Moved(other, current)
                : binding.UnboundReason ?? "the nexus can no longer be resolved";
            if (!device.Path.Unbind(reason)) return false;
            // The next bind attempt waits a full second, so the change is seen in the log between.
            device.NextBindAttempt = now + 1000;
            Log.Warning($"{device.Key}: unbound from {current}: {reason}; PR OUT on this path is refused until it is bound again");
            return true;
        }
    }

    private static string Moved(ItNexus now, ItNexus before) =>
        $"configfs now maps this backstore to {now}, but it served {before}: a path never changes its initiator; " +
        $"remove and re-create the backstore (or restart the daemon) to serve {now.Initiator.Name} through it";

    /// <summary>Forces the binding check of one path now (tests; the tick rate-limits it).</summary>
    internal bool RecheckBinding(int hbaIndex, string name) =>
        _devices.TryGetValue(Key(hbaIndex, name), out var d) && CheckBinding(d, force: true);

    /// <summary>Ring threads: another nexus's command meets <paramref name="holder"/>'s SPC-2
    /// reservation; look at the holder's session now rather than at the next tick, so that an
    /// initiator that just logged out no longer blocks the others.</summary>
    private void CheckNexus(ItNexus holder)
    {
        foreach (var device in Volatile.Read(ref _deviceList))
            if (holder.Equals(device.Path.Nexus)) CheckSession(device);
    }

    /// <summary>An initiator whose session ended (logged out, or logged out and in again) loses its
    /// SPC-2 reservation, never its persistent ones. Any thread.</summary>
    private void CheckSession(Device device)
    {
        if (device.Binding is not { } binding || device.Watch is not { } watch || device.Path.Nexus is not { } nexus) return;
        bool ended;
        try { ended = watch.NexusEnded(binding); }
        catch (IOException) { return; }
        if (!ended) return;
        Log.Info($"{device.Key}: I_T nexus {nexus} lost");
        device.Path.Volume.Reservations.NexusLost(nexus);
    }
}
