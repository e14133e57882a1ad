namespace TcmuSharedVolume.Scsi;

/// <summary>
/// A sense key with its additional sense code and qualifier (SPC-4 4.5.6, Annex D).
/// The names are the standard's, so that a reader can grep them in T10 text and in sg3_utils output.
/// </summary>
public readonly record struct SenseCode(SenseKey Key, byte Asc, byte Ascq)
{
    public static readonly SenseCode NoSense = new(SenseKey.NoSense, 0x00, 0x00);

    // NOT READY
    public static readonly SenseCode LogicalUnitNotReadyCauseNotReportable = new(SenseKey.NotReady, 0x04, 0x00);
    public static readonly SenseCode LogicalUnitCommunicationFailure = new(SenseKey.NotReady, 0x08, 0x00);
    public static readonly SenseCode MediumNotPresent = new(SenseKey.NotReady, 0x3A, 0x00);

    // MEDIUM ERROR / HARDWARE ERROR
    public static readonly SenseCode WriteError = new(SenseKey.MediumError, 0x0C, 0x00);
    public static readonly SenseCode UnrecoveredReadError = new(SenseKey.MediumError, 0x11, 0x00);
    public static readonly SenseCode InternalTargetFailure = new(SenseKey.HardwareError, 0x44, 0x00);

    // ILLEGAL REQUEST
    public static readonly SenseCode ParameterListLengthError = new(SenseKey.IllegalRequest, 0x1A, 0x00);
    public static readonly SenseCode InvalidCommandOperationCode = new(SenseKey.IllegalRequest, 0x20, 0x00);
    public static readonly SenseCode LbaOutOfRange = new(SenseKey.IllegalRequest, 0x21, 0x00);
    public static readonly SenseCode InvalidFieldInCdb = new(SenseKey.IllegalRequest, 0x24, 0x00);
    public static readonly SenseCode InvalidFieldInParameterList = new(SenseKey.IllegalRequest, 0x26, 0x00);
    public static readonly SenseCode InvalidReleaseOfPersistentReservation = new(SenseKey.IllegalRequest, 0x26, 0x04);
    public static readonly SenseCode SavingParametersNotSupported = new(SenseKey.IllegalRequest, 0x39, 0x00);
    public static readonly SenseCode InsufficientRegistrationResources = new(SenseKey.IllegalRequest, 0x55, 0x04);

    // UNIT ATTENTION
    public static readonly SenseCode PowerOnResetOrBusDeviceResetOccurred = new(SenseKey.UnitAttention, 0x29, 0x00);
    public static readonly SenseCode BusDeviceResetFunctionOccurred = new(SenseKey.UnitAttention, 0x29, 0x03);
    public static readonly SenseCode ModeParametersChanged = new(SenseKey.UnitAttention, 0x2A, 0x01);
    public static readonly SenseCode ReservationsPreempted = new(SenseKey.UnitAttention, 0x2A, 0x03);
    public static readonly SenseCode ReservationsReleased = new(SenseKey.UnitAttention, 0x2A, 0x04);
    public static readonly SenseCode RegistrationsPreempted = new(SenseKey.UnitAttention, 0x2A, 0x05);
    public static readonly SenseCode CapacityDataHasChanged = new(SenseKey.UnitAttention, 0x2A, 0x09);
    public static readonly SenseCode CommandsClearedByAnotherInitiator = new(SenseKey.UnitAttention, 0x2F, 0x00);
    public static readonly SenseCode InquiryDataHasChanged = new(SenseKey.UnitAttention, 0x3F, 0x03);

    // MISCOMPARE
    public static readonly SenseCode MiscompareDuringVerifyOperation = new(SenseKey.Miscompare, 0x1D, 0x00);

    public override string ToString() => $"{(byte)Key:X1}/{Asc:X2}/{Ascq:X2}";
}
