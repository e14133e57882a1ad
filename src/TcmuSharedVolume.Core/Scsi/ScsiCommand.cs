namespace TcmuSharedVolume.Scsi;

/// <summary>
/// One SCSI command as the command set sees it: the CDB, the data buffer, and the result.
/// Instances are pooled and reused by the transport, so nothing here allocates per command.
/// </summary>
public sealed class ScsiCommand
{
    /// <summary>Longest CDB we accept: a variable-length CDB is at most 260 bytes (SPC-4 4.2.4).</summary>
    public const int MaxCdbLength = 260;

    private readonly byte[] _cdb = new byte[MaxCdbLength];
    private readonly byte[] _sense = new byte[SenseData.MaxLength];

    public int CdbLength { get; private set; }
    public ReadOnlySpan<byte> Cdb => _cdb.AsSpan(0, CdbLength);
    public byte OperationCode => _cdb[0];

    /// <summary>Data-Out (initiator's data) or Data-In (where the answer goes).</summary>
    public DataBuffer Data { get; set; }

    /// <summary>Whether CHECK CONDITION carries descriptor sense (D_SENSE in the Control mode page).</summary>
    public bool DescriptorSense { get; set; }

    /// <summary>Transport's identifier for the command (TCMU cmd_id); opaque to the command set.</summary>
    public int TransportTag { get; set; }

    public ScsiStatus Status { get; private set; }
    public int SenseLength { get; private set; }
    public ReadOnlySpan<byte> Sense => _sense.AsSpan(0, SenseLength);

    /// <summary>Bytes of Data-In actually produced; -1 when the whole buffer is valid.</summary>
    public long DataInLength { get; private set; } = -1;

    public void SetCdb(ReadOnlySpan<byte> cdb)
    {
        if (cdb.Length > MaxCdbLength) throw new ArgumentException("CDB too long", nameof(cdb));
        cdb.CopyTo(_cdb);
        CdbLength = cdb.Length;
    }

    /// <summary>Prepares a pooled instance for the next command.</summary>
    public void Reset()
    {
        CdbLength = 0;
        Data = DataBuffer.Empty;
        Status = ScsiStatus.Good;
        SenseLength = 0;
        DataInLength = -1;
        TransportTag = 0;
    }

    public void Good(long dataInLength = -1)
    {
        Status = ScsiStatus.Good;
        SenseLength = 0;
        DataInLength = dataInLength;
    }

    public void CheckCondition(SenseCode code, FieldPointer? field = null, ulong? information = null)
    {
        Status = ScsiStatus.CheckCondition;
        SenseLength = SenseData.Write(_sense, code, DescriptorSense, field, information);
        DataInLength = 0;
    }

    public void Complete(ScsiStatus status)
    {
        Status = status;
        SenseLength = 0;
        DataInLength = 0;
    }

    public void ReservationConflict() => Complete(ScsiStatus.ReservationConflict);
}
