using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>One registration as tsvctl shows it.</summary>
public sealed record RegistrationSnapshot(ItNexus Nexus, ulong Key, bool AllTargetPorts, bool IsHolder);

/// <summary>A volume's reservation table as tsvctl shows it.</summary>
public sealed record ReservationSnapshot(
    uint Generation,
    bool Aptpl,
    PersistentReservationType Type,
    ItNexus? Holder,
    IReadOnlyList<RegistrationSnapshot> Registrations,
    ItNexus? Spc2Holder);
