namespace TcmuSharedVolume.Linux.Configfs;

/// <summary>
/// Watches one bound path's I_T nexus in configfs and tells when it has ended (TCMU sends no
/// logout notice). An iSCSI nexus ends when its ACL loses its session, and also when the
/// session seen last time was replaced by another one: an initiator that logs out and logs in
/// again between two looks (libiscsi Reserve6.Logout does it in milliseconds) still ended the
/// old nexus, and its SPC-2 reservation with it (SPC-2 5.5.1). Any thread.
/// </summary>
public sealed class NexusSessionWatch(TargetConfigfs configfs)
{
    private readonly Lock _lock = new();
    private bool? _wasActive;
    private string? _session;

    /// <summary>Looks at the nexus now; true when the nexus seen active at the previous look has
    /// ended since. Null binding fields or a fabric configfs cannot judge: false.</summary>
    /// <exception cref="IOException">configfs could not be read.</exception>
    public bool NexusEnded(NexusBinding binding)
    {
        lock (_lock)
        {
            bool? active;
            string? session = null;
            if (binding.AclPath is { } acl && binding.Nexus?.Initiator.Protocol == TcmuSharedVolume.Scsi.ProtocolId.Iscsi)
            {
                var info = TargetConfigfs.ReadIscsiSession(acl); // one read: state and session agree
                active = info.Active;
                if (info.Active) session = info.SessionId;
            }
            else
            {
                active = configfs.IsNexusActive(binding);
            }
            if (active is not { } now) return false;
            bool ended = _wasActive == true && (!now || (session is not null && _session is not null && session != _session));
            _wasActive = now;
            _session = session;
            return ended;
        }
    }
}
