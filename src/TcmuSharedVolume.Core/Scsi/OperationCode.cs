namespace TcmuSharedVolume.Scsi;

/// <summary>Operation codes this target knows (SPC-4 Annex D, SBC-3 Table 19).</summary>
public static class OperationCode
{
    public const byte TestUnitReady = 0x00;
    public const byte RequestSense = 0x03;
    public const byte Read6 = 0x08;
    public const byte Write6 = 0x0A;
    public const byte Inquiry = 0x12;
    public const byte ModeSelect6 = 0x15;
    public const byte Reserve6 = 0x16;
    public const byte Release6 = 0x17;
    public const byte ModeSense6 = 0x1A;
    public const byte StartStopUnit = 0x1B;
    public const byte SendDiagnostic = 0x1D;
    public const byte PreventAllowMediumRemoval = 0x1E;
    public const byte ReadCapacity10 = 0x25;
    public const byte Read10 = 0x28;
    public const byte Write10 = 0x2A;
    public const byte WriteAndVerify10 = 0x2E;
    public const byte Verify10 = 0x2F;
    public const byte SynchronizeCache10 = 0x35;
    public const byte WriteSame10 = 0x41;
    public const byte Unmap = 0x42;
    public const byte ModeSelect10 = 0x55;
    public const byte Reserve10 = 0x56;
    public const byte Release10 = 0x57;
    public const byte ModeSense10 = 0x5A;
    public const byte PersistentReserveIn = 0x5E;
    public const byte PersistentReserveOut = 0x5F;
    public const byte VariableLength = 0x7F;
    public const byte Read16 = 0x88;
    public const byte CompareAndWrite = 0x89;
    public const byte Write16 = 0x8A;
    public const byte WriteAndVerify16 = 0x8E;
    public const byte Verify16 = 0x8F;
    public const byte SynchronizeCache16 = 0x91;
    public const byte WriteSame16 = 0x93;
    public const byte ServiceActionIn16 = 0x9E; // READ CAPACITY(16) 10h, GET LBA STATUS 12h
    public const byte ReportLuns = 0xA0;
    public const byte MaintenanceIn = 0xA3; // REPORT TARGET PORT GROUPS 0Ah, REPORT SUPPORTED OPERATION CODES 0Ch
    public const byte Read12 = 0xA8;
    public const byte Write12 = 0xAA;
    public const byte WriteAndVerify12 = 0xAE;
    public const byte Verify12 = 0xAF;

    public const byte ServiceActionReadCapacity16 = 0x10;
    public const byte ServiceActionGetLbaStatus = 0x12;
    public const byte ServiceActionReportTargetPortGroups = 0x0A;
    public const byte ServiceActionReportSupportedOperationCodes = 0x0C;

    /// <summary>Judged by the reservation engine rather than the gate (<see cref="CommandTable"/>).</summary>
    public static bool IsReservationCommand(byte op) => CommandTable.IsReservationCommand(op);
}
