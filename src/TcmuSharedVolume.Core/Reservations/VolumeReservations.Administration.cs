using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

public sealed partial class VolumeReservations
{
    // ------------------------------------------------------------------ admin (tsvctl)

    /// <summary>The table as an administrator sees it.</summary>
    public ReservationSnapshot Snapshot()
    {
        var s = State;
        var regs = new RegistrationSnapshot[s.Registrations.Length];
        for (int i = 0; i < regs.Length; i++)
        {
            var r = s.Registrations[i];
            regs[i] = new RegistrationSnapshot(r.Nexus, r.Key, r.AllTargetPorts, s.IsHolder(i));
        }
        return new ReservationSnapshot(s.Generation, s.Aptpl, s.Type, s.Holder?.Nexus, regs, s.Spc2Holder);
    }

    /// <summary>
    /// Break-glass: drops every registration, the persistent reservation and any SPC-2 reservation,
    /// persists that, and gives every former registrant RESERVATIONS PREEMPTED (as CLEAR would).
    /// </summary>
    /// <exception cref="IOException">The cleared state could not be persisted; nothing changed.</exception>
    public void AdministrativeClear()
    {
        if (_cluster is not null)
        {
            ClusterAdministrativeClear();
            return;
        }
        lock (_prLock)
        {
            var s = _state;
            var b = new StateBuilder(s);
            b.Registrations.Clear();
            b.Release();
            b.Spc2Holder = null;
            b.Generation++;
            var next = b.Build(Bound());
            _store.Save(ToPersisted(next));
            Volatile.Write(ref _state, next);
            QueueUnitAttentions(s.Registrations.Select(r => (r.Nexus, SenseCode.ReservationsPreempted)));
            AuditChange(ReservationAction.AdministrativeClear, null, s, next);
            Log.Notice($"reservations: administrative clear dropped {s.Registrations.Length} registrations");
        }
    }
}
