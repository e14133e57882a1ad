using System.Globalization;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>What a reservation change was (SERVICE_ACTION= in the journal; docs/operations.md §12).</summary>
public enum ReservationAction
{
    Register,
    RegisterAndIgnoreExistingKey,
    /// <summary>REGISTER (or REGISTER AND IGNORE EXISTING KEY) with service action key 0 by a registrant.</summary>
    Unregister,
    Reserve,
    Release,
    Clear,
    Preempt,
    PreemptAndAbort,
    RegisterAndMove,
    /// <summary>SPC-2 RESERVE(6/10).</summary>
    Spc2Reserve,
    /// <summary>SPC-2 RELEASE(6/10).</summary>
    Spc2Release,
    /// <summary>A LUN or target reset released an SPC-2 reservation (SPC-2 5.5.1).</summary>
    Spc2Reset,
    /// <summary>I_T nexus loss (logout) released an SPC-2 reservation.</summary>
    Spc2NexusLoss,
    /// <summary>tsvctl pr clear.</summary>
    AdministrativeClear,
}

/// <summary>How the command ended (RESULT=).</summary>
public enum ReservationResult
{
    /// <summary>GOOD; the table may or may not have changed (RELEASE by a non-holder changes nothing).</summary>
    Good,
    /// <summary>RESERVATION CONFLICT: a refused fence or takeover, nothing changed.</summary>
    Conflict,
    /// <summary>HARDWARE ERROR: the new state could not be made durable, nothing changed.</summary>
    PersistFailed,
    /// <summary>HARDWARE ERROR: PREEMPT AND ABORT committed, but the preempted nexuses' commands
    /// were still running at abort_timeout (docs/reservations.md §9).</summary>
    AbortTimeout,
    /// <summary>HARDWARE ERROR: committed to a shared table, but another host neither acknowledged
    /// it nor could be fenced (docs/reservations.md §18); the change stays in force.</summary>
    NotConfirmed,
}

/// <summary>
/// Where the reservation engine reports each change after it committed it (the daemon writes
/// the journal). Called under the volume's reservation lock, in commit order, never on the I/O
/// path; must not throw and should not block.
/// </summary>
public interface IReservationAuditSink
{
    void Record(ReservationChange change);
}

/// <summary>
/// One entry of the reservation audit trail: who did what to the table and what it became.
/// Built by the engine from the states before and after the command; <see cref="Fields"/> and
/// <see cref="Message"/> are what the journal shows.
/// </summary>
/// <param name="Issuer">The nexus whose command it was; null for the administrator and for a reset on an unbound path.</param>
/// <param name="Key">The issuer's RESERVATION KEY field (PR OUT), else its registered key, else 0.</param>
/// <param name="ServiceActionKey">SERVICE ACTION RESERVATION KEY (PR OUT), else 0.</param>
/// <param name="Type">The persistent reservation type after the change.</param>
/// <param name="Holder">The holder after the change (SPC-2 holder for the SPC-2 actions); null for none or all registrants.</param>
/// <param name="PreviousType">The persistent reservation type before.</param>
/// <param name="PreviousHolder">The holder before (SPC-2 holder for the SPC-2 actions).</param>
/// <param name="Generation">PRgeneration after the change.</param>
/// <param name="Removed">Registrations the change removed from the table, other than the issuer's own unregistration.</param>
public sealed record ReservationChange(
    ReservationAction Action,
    ItNexus? Issuer,
    ulong Key,
    ulong ServiceActionKey,
    PersistentReservationType Type,
    ItNexus? Holder,
    PersistentReservationType PreviousType,
    ItNexus? PreviousHolder,
    uint Generation,
    ReservationResult Result,
    IReadOnlyList<ItNexus> Removed)
{
    /// <summary>The version of the shared table the change made or was judged on (an RBD volume
    /// served by several hosts, docs/reservations.md §18); null for a table of this host alone.</summary>
    public ulong? TableVersion { get; init; }

    /// <summary>journald MESSAGE_ID= of every reservation change (a fixed 128-bit id, as
    /// systemd's catalog uses them): <c>journalctl MESSAGE_ID=…</c> finds them all.</summary>
    public const string MessageId = "6f1a3c2e9b7d4e0a8c5b1d2f3e4a5b6c";

    public static string ActionName(ReservationAction action) => action switch
    {
        ReservationAction.Register => "REGISTER",
        ReservationAction.RegisterAndIgnoreExistingKey => "REGISTER AND IGNORE EXISTING KEY",
        ReservationAction.Unregister => "UNREGISTER",
        ReservationAction.Reserve => "RESERVE",
        ReservationAction.Release => "RELEASE",
        ReservationAction.Clear => "CLEAR",
        ReservationAction.Preempt => "PREEMPT",
        ReservationAction.PreemptAndAbort => "PREEMPT AND ABORT",
        ReservationAction.RegisterAndMove => "REGISTER AND MOVE",
        ReservationAction.Spc2Reserve => "SPC-2 RESERVE",
        ReservationAction.Spc2Release => "SPC-2 RELEASE",
        ReservationAction.Spc2Reset => "SPC-2 RESET",
        ReservationAction.Spc2NexusLoss => "SPC-2 NEXUS LOSS",
        _ => "ADMINISTRATIVE CLEAR",
    };

    public static string ResultName(ReservationResult result) => result switch
    {
        ReservationResult.Good => "good",
        ReservationResult.Conflict => "conflict",
        ReservationResult.PersistFailed => "persist-failed",
        ReservationResult.AbortTimeout => "abort-timeout",
        _ => "not-confirmed",
    };

    /// <summary>Whether an operator should look at it: a refusal or a failure.</summary>
    public bool IsFailure => Result != ReservationResult.Good;

    private bool IsSpc2 => Action is ReservationAction.Spc2Reserve or ReservationAction.Spc2Release
        or ReservationAction.Spc2Reset or ReservationAction.Spc2NexusLoss;

    /// <summary>The structured fields, volume fields excepted (the sink knows its volume).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Fields()
    {
        List<KeyValuePair<string, string>> fields =
        [
            new("MESSAGE_ID", MessageId),
            new("SERVICE_ACTION", ActionName(Action)),
            new("NEXUS", Issuer?.ToString() ?? (Action == ReservationAction.AdministrativeClear ? "administrator" : "unbound path")),
            new("KEY", Hex(Key)),
            new("SERVICE_ACTION_KEY", Hex(ServiceActionKey)),
            new("TYPE", IsSpc2 ? (Holder is null ? "none" : "SPC-2") : Type.DisplayName()),
            new("HOLDER", HolderName(Type, Holder)),
            new("PREVIOUS_HOLDER", HolderName(PreviousType, PreviousHolder)),
            new("GENERATION", Generation.ToString(CultureInfo.InvariantCulture)),
            new("RESULT", ResultName(Result)),
            new("REMOVED", Removed.Count == 0 ? "none" : string.Join(", ", Removed)),
        ];
        if (TableVersion is { } version) fields.Add(new("TABLE_VERSION", version.ToString(CultureInfo.InvariantCulture)));
        return fields;
    }

    /// <summary>One line an operator reads in <c>journalctl</c>.</summary>
    public string Message
    {
        get
        {
            string who = Issuer?.ToString() ?? "unbound path";
            string removed = string.Join(", ", Removed);
            string sak = $"key {Hex(ServiceActionKey)}";
            string what = Action switch
            {
                ReservationAction.Register or ReservationAction.RegisterAndIgnoreExistingKey when ServiceActionKey == 0 =>
                    $"{who} registered nothing ({ActionName(Action)} with key 0 while not registered)",
                ReservationAction.Register or ReservationAction.RegisterAndIgnoreExistingKey =>
                    $"{who} registered {sak} ({ActionName(Action)})",
                ReservationAction.Unregister => $"{who} unregistered key {Hex(Key)}",
                ReservationAction.Reserve => $"{who} reserved {Type.DisplayName()}",
                ReservationAction.Release => $"{who} released the reservation",
                ReservationAction.Clear => $"{who} cleared every registration and the reservation",
                ReservationAction.Preempt or ReservationAction.PreemptAndAbort =>
                    $"{who} {(Action == ReservationAction.Preempt ? "preempted" : "preempted and aborted")} " +
                    (Removed.Count == 0 ? sak : $"{removed} ({sak})"),
                ReservationAction.RegisterAndMove => $"{who} moved the reservation to {(Holder?.ToString() ?? "nobody")}",
                ReservationAction.Spc2Reserve => $"{who} reserved the volume (SPC-2 RESERVE)",
                ReservationAction.Spc2Release => $"{who} released its SPC-2 reservation",
                ReservationAction.Spc2Reset => $"a reset from {who} released the SPC-2 reservation of {HolderName(PreviousType, PreviousHolder)}",
                ReservationAction.Spc2NexusLoss => $"{who} lost its I_T nexus (logout), which released its SPC-2 reservation",
                _ => $"the administrator cleared every registration and the reservation (tsvctl pr clear)" +
                     (Removed.Count == 0 ? "" : $", dropping {removed}"),
            };
            string outcome = Result switch
            {
                ReservationResult.Good => IsSpc2 ? "" : $"; now {Describe(Type, Holder)}, generation {Generation}",
                ReservationResult.Conflict => $": RESERVATION CONFLICT, nothing changed (holder {HolderName(PreviousType, PreviousHolder)})",
                ReservationResult.PersistFailed => ": FAILED, the new state could not be saved, nothing changed",
                ReservationResult.AbortTimeout => $": the preemption is in force (generation {Generation}), but commands of {removed} were still running " +
                     "at abort_timeout; answered HARDWARE ERROR",
                _ => $": in force (generation {Generation}), but another host serving the volume neither acknowledged it nor " +
                     "could be fenced; answered HARDWARE ERROR",
            };
            return "reservation: " + what + outcome + (TableVersion is { } v ? $" (shared table version {v})" : "");
        }
    }

    private static string Describe(PersistentReservationType type, ItNexus? holder) =>
        type == PersistentReservationType.None ? "no reservation" : $"{type.DisplayName()} held by {HolderName(type, holder)}";

    private static string HolderName(PersistentReservationType type, ItNexus? holder) =>
        holder is not null ? holder.ToString() : type.IsAllRegistrants() ? "all registrants" : "none";

    private static string Hex(ulong key) => "0x" + key.ToString("x16", CultureInfo.InvariantCulture);
}
