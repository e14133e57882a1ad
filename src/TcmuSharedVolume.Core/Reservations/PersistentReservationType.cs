namespace TcmuSharedVolume.Reservations;

/// <summary>SPC-4 6.15.2 Table 212 (PR TYPE). Codes 0h, 2h, 4h and 9h-Fh are obsolete/reserved.</summary>
public enum PersistentReservationType : byte
{
    None = 0x0,
    WriteExclusive = 0x1,
    ExclusiveAccess = 0x3,
    WriteExclusiveRegistrantsOnly = 0x5,
    ExclusiveAccessRegistrantsOnly = 0x6,
    WriteExclusiveAllRegistrants = 0x7,
    ExclusiveAccessAllRegistrants = 0x8,
}

/// <summary>PERSISTENT RESERVE OUT service actions (SPC-4 6.16.2).</summary>
internal static class PrOutAction
{
    public const byte Register = 0x00;
    public const byte Reserve = 0x01;
    public const byte Release = 0x02;
    public const byte Clear = 0x03;
    public const byte Preempt = 0x04;
    public const byte PreemptAndAbort = 0x05;
    public const byte RegisterAndIgnoreExistingKey = 0x06;
    public const byte RegisterAndMove = 0x07;
    public const byte ReplaceLostReservation = 0x08; // SPC-5; not implemented, RLR_C=0
}

/// <summary>PERSISTENT RESERVE IN service actions (SPC-4 6.15.1).</summary>
internal static class PrInAction
{
    public const byte ReadKeys = 0x00;
    public const byte ReadReservation = 0x01;
    public const byte ReportCapabilities = 0x02;
    public const byte ReadFullStatus = 0x03;
}

public static class PersistentReservationTypes
{
    public static bool IsValid(byte type) => type is 1 or 3 or 5 or 6 or 7 or 8;

    /// <summary>WEAR/EAAR: every registrant is a reservation holder (SPC-4 5.12.10).</summary>
    public static bool IsAllRegistrants(this PersistentReservationType t) =>
        t is PersistentReservationType.WriteExclusiveAllRegistrants or PersistentReservationType.ExclusiveAccessAllRegistrants;

    /// <summary>Types whose release gives other registrants RESERVATIONS RELEASED (SPC-4 5.12.11.2.2).</summary>
    public static bool IsRegistrantsType(this PersistentReservationType t) => (byte)t >= 5;

    /// <summary>The SPC-4 name, as tsvctl and the journal show it.</summary>
    public static string DisplayName(this PersistentReservationType t) => t switch
    {
        PersistentReservationType.None => "none",
        PersistentReservationType.WriteExclusive => "Write Exclusive",
        PersistentReservationType.ExclusiveAccess => "Exclusive Access",
        PersistentReservationType.WriteExclusiveRegistrantsOnly => "Write Exclusive - Registrants Only",
        PersistentReservationType.ExclusiveAccessRegistrantsOnly => "Exclusive Access - Registrants Only",
        PersistentReservationType.WriteExclusiveAllRegistrants => "Write Exclusive - All Registrants",
        PersistentReservationType.ExclusiveAccessAllRegistrants => "Exclusive Access - All Registrants",
        _ => t.ToString(),
    };
}
