using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

public sealed partial class VolumeReservations
{
    // ------------------------------------------------------------------ SPC-2 RESERVE / RELEASE

    private void Spc2ReserveRelease(ItNexus? issuer, ScsiCommand command, bool reserve)
    {
        var cdb = command.Cdb;
        if (issuer is null)
        {
            command.CheckCondition(UnboundPathSense);
            return;
        }
        if (_cluster is not null)
        {
            Spc2NotInCluster(command);
            return;
        }
        // RESERVE(10)/RELEASE(10) third-party reservations (3RDPTY, byte 1 bit 4) are not supported.
        if (cdb.Length >= 10 && cdb[0] is OperationCode.Reserve10 or OperationCode.Release10 && (cdb[1] & 0x10) != 0)
        {
            command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(1, 4));
            return;
        }
        lock (_prLock)
        {
            var s = _state;
            if (s.HasReservation)
            {
                // CRH=1 (SPC-4 5.12.3): a PR holder, or a registrant under an RO/AR reservation,
                // gets GOOD and nothing changes.
                int index = s.IndexOf(issuer);
                if (s.IsHolder(index) || (index >= 0 && s.Type.IsRegistrantsType()))
                {
                    command.Good(0);
                    return;
                }
            }
            // Otherwise SPC-2 rules apply, and they conflict with any registration (SPC-2 5.5.1).
            if (s.Registrations.Length > 0)
            {
                command.ReservationConflict();
                return;
            }
            if (reserve)
            {
                if (s.Spc2Holder is not null && !s.Spc2Holder.Equals(issuer))
                {
                    command.ReservationConflict();
                    return;
                }
                if (s.Spc2Holder is null)
                {
                    Publish(new StateBuilder(s) { Spc2Holder = issuer });
                    AuditChange(ReservationAction.Spc2Reserve, issuer, s, _state);
                }
            }
            else if (s.Spc2Holder is not null && s.Spc2Holder.Equals(issuer))
            {
                Publish(new StateBuilder(s) { Spc2Holder = null });
                AuditChange(ReservationAction.Spc2Release, issuer, s, _state);
            }
            // RELEASE by a non-holder is GOOD and changes nothing (SPC-2 7.17).
        }
        command.Good(0);
    }
}
