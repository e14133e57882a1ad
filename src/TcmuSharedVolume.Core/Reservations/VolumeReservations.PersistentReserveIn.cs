using System.Buffers.Binary;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

public sealed partial class VolumeReservations
{
    // ------------------------------------------------------------------ PERSISTENT RESERVE IN

    private void PersistentReserveIn(ItNexus? issuer, ScsiCommand command)
    {
        _ = issuer; // PR IN works on unbound paths too: it reveals nothing nexus-specific
        var cdb = command.Cdb;
        if (cdb.Length < 10)
        {
            command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(0));
            return;
        }
        var s = State;
        if (s.Spc2Holder is not null) // docs/reservations.md §12, §13 (SPC-2 5.5.1)
        {
            command.ReservationConflict();
            return;
        }
        int allocation = BinaryPrimitives.ReadUInt16BigEndian(cdb.Slice(7));
        byte[] data;
        switch (cdb[1] & 0x1F)
        {
            case PrInAction.ReadKeys:
                data = new byte[8 + 8 * s.Registrations.Length];
                BinaryPrimitives.WriteUInt32BigEndian(data, s.Generation);
                BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), (uint)(8 * s.Registrations.Length));
                for (int i = 0; i < s.Registrations.Length; i++)
                    BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(8 + 8 * i), s.Registrations[i].Key);
                break;
            case PrInAction.ReadReservation:
                data = new byte[s.HasReservation ? 24 : 8];
                BinaryPrimitives.WriteUInt32BigEndian(data, s.Generation);
                if (s.HasReservation)
                {
                    BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), 16);
                    // AR types report key 0 (SPC-4 5.12.10); others the holder's current key.
                    BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(8), s.Holder?.Key ?? 0);
                    data[21] = (byte)s.Type; // scope LU_SCOPE (0) in bits 7-4
                }
                break;
            case PrInAction.ReportCapabilities:
                data = new byte[8];
                data[1] = 8;
                data[2] = 0x10 | 0x08 | 0x04 | 0x01; // CRH, SIP_C, ATP_C, PTPL_C; RLR_C=0
                // TMV; ALLOW COMMANDS 011b: TUR passes WE and EA, and MODE SENSE, READ ATTRIBUTE,
                // READ BUFFER, RECEIVE COPY RESULTS, RECEIVE DIAGNOSTIC RESULTS, REPORT SUPPORTED
                // OPERATION CODES / TMFs and READ DEFECT DATA pass WE: the gate's classes in
                // ReservationAccess keep this true. PTPL_A live.
                data[3] = (byte)(0x80 | (0b011 << 4) | (s.Aptpl ? 0x01 : 0x00));
                data[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
                data[5] = 0x01; // EX_AC_AR
                break;
            case PrInAction.ReadFullStatus:
                data = ReadFullStatus(s);
                break;
            default:
                command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(1, 4));
                return;
        }
        // Truncation to ALLOCATION LENGTH never changes the length fields (SPC-4 4.2.5.6).
        int n = (int)Math.Min(Math.Min(allocation, data.Length), command.Data.Length);
        command.Data.CopyFrom(0, data.AsSpan(0, n));
        command.Good(n);
    }

    private byte[] ReadFullStatus(ReservationState s)
    {
        var bound = Bound();
        using var ms = new MemoryStream();
        Span<byte> header = stackalloc byte[24];
        foreach (var (r, i) in s.Registrations.Select((r, i) => (r, i)))
        {
            // Report the ISID of the session that is bound now; fall back to the one seen at registration.
            var current = Array.Find(bound, n => n.Equals(r.Nexus));
            var tid = TransportIdWriter.Build(r.Nexus.Initiator, current?.Initiator.Isid ?? r.Nexus.Initiator.Isid);
            header.Clear();
            BinaryPrimitives.WriteUInt64BigEndian(header, r.Key);
            bool holder = s.IsHolder(i);
            header[12] = (byte)((r.AllTargetPorts ? 0x02 : 0) | (holder ? 0x01 : 0));
            if (holder) header[13] = (byte)s.Type;
            if (!r.AllTargetPorts)
                BinaryPrimitives.WriteUInt16BigEndian(header.Slice(18), r.Nexus.Target.RelativeTargetPortId);
            BinaryPrimitives.WriteUInt32BigEndian(header.Slice(20), (uint)tid.Length);
            ms.Write(header);
            ms.Write(tid);
        }
        var data = new byte[8 + ms.Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, s.Generation);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), (uint)ms.Length);
        ms.GetBuffer().AsSpan(0, (int)ms.Length).CopyTo(data.AsSpan(8));
        return data;
    }
}
