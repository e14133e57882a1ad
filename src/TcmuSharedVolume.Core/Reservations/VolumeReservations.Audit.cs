using System.Buffers.Binary;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

public sealed partial class VolumeReservations
{
    // ------------------------------------------------------------------ audit trail (docs/operations.md §12)

    /// <summary>Where each reservation change is reported once it is committed (the daemon: the
    /// journal). Null: not reported. Set before the volume serves commands.</summary>
    public IReservationAuditSink? Audit { get; set; }

    /// <summary>One record for a PR OUT the engine judged: GOOD (changed or not), RESERVATION
    /// CONFLICT, or a failure after the judgement. A CHECK CONDITION for a malformed command
    /// records nothing: nothing was decided about the table. On one host the caller holds the
    /// lock, so records follow commit order; a shared table's records name its version
    /// (<paramref name="tableVersion"/>).</summary>
    private void AuditPrOut(ItNexus issuer, ScsiCommand command, ReservationState before, ReservationState after, ReservationResult result,
        ulong? tableVersion = null)
    {
        if (Audit is null) return;
        Span<byte> keys = stackalloc byte[16];
        keys.Clear();
        if (command.Data.Length >= 16) command.Data.CopyTo(0, keys);
        ulong key = BinaryPrimitives.ReadUInt64BigEndian(keys);
        ulong serviceActionKey = BinaryPrimitives.ReadUInt64BigEndian(keys[8..]);
        var action = (command.Cdb[1] & 0x1F) switch
        {
            PrOutAction.Register or PrOutAction.RegisterAndIgnoreExistingKey when serviceActionKey == 0 && before.IndexOf(issuer) >= 0
                => ReservationAction.Unregister,
            PrOutAction.Register => ReservationAction.Register,
            PrOutAction.RegisterAndIgnoreExistingKey => ReservationAction.RegisterAndIgnoreExistingKey,
            PrOutAction.Reserve => ReservationAction.Reserve,
            PrOutAction.Release => ReservationAction.Release,
            PrOutAction.Clear => ReservationAction.Clear,
            PrOutAction.Preempt => ReservationAction.Preempt,
            PrOutAction.PreemptAndAbort => ReservationAction.PreemptAndAbort,
            _ => ReservationAction.RegisterAndMove,
        };
        Report(new ReservationChange(action, issuer, key, serviceActionKey, after.Type, after.Holder?.Nexus,
            before.Type, before.Holder?.Nexus, after.Generation, result, Removed(before, after, issuer)) { TableVersion = tableVersion });
    }

    /// <summary>One record for a change of the SPC-2 reservation (or an administrative clear).</summary>
    private void AuditChange(ReservationAction action, ItNexus? issuer, ReservationState before, ReservationState after,
        ulong? tableVersion = null)
    {
        if (Audit is null) return;
        bool spc2 = action != ReservationAction.AdministrativeClear;
        ulong key = issuer is not null && before.IndexOf(issuer) is >= 0 and var i ? before.Registrations[i].Key : 0;
        Report(new ReservationChange(action, issuer, key, 0,
            spc2 ? PersistentReservationType.None : after.Type, spc2 ? after.Spc2Holder : after.Holder?.Nexus,
            spc2 ? PersistentReservationType.None : before.Type, spc2 ? before.Spc2Holder : before.Holder?.Nexus,
            after.Generation, ReservationResult.Good, Removed(before, after, issuer)) { TableVersion = tableVersion });
    }

    /// <summary>Registrations of others that the change took out of the table.</summary>
    private static List<ItNexus> Removed(ReservationState before, ReservationState after, ItNexus? issuer) =>
        before.Registrations.Select(r => r.Nexus)
            .Where(n => after.IndexOf(n) < 0 && (issuer is null || !n.Equals(issuer)))
            .Distinct().ToList();

    private void Report(ReservationChange change)
    {
        try
        {
            Audit?.Record(change);
        }
        catch (Exception e)
        {
            // The change is committed and the initiator is owed its answer; a broken journal is not its fault.
            Log.Error($"reservations: audit record lost ({e.Message}): {change.Message}");
        }
    }
}
