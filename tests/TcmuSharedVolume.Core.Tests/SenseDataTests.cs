using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Tests;

public class SenseDataTests
{
    [Fact]
    public void FixedSenseCarriesKeyAscAscqAndFieldPointer()
    {
        var buf = new byte[SenseData.MaxLength];
        int n = SenseData.Write(buf, SenseCode.InvalidFieldInCdb, descriptorFormat: false, FieldPointer.Cdb(2, 1));
        Assert.Equal(18, n);
        Assert.Equal(0x70, buf[0]);
        Assert.Equal(0x05, buf[2]);
        Assert.Equal(0x0A, buf[7]);
        Assert.Equal(0x24, buf[12]);
        Assert.Equal(0x00, buf[13]);
        Assert.Equal(0x80 | 0x40 | 0x08 | 0x01, buf[15]); // SKSV, C/D, BPV, bit 1
        Assert.Equal(0, buf[16]);
        Assert.Equal(2, buf[17]);
        Assert.Equal(SenseCode.InvalidFieldInCdb, SenseData.Parse(buf));
    }

    [Fact]
    public void DescriptorSenseCarriesInformationForMiscompare()
    {
        var buf = new byte[SenseData.MaxLength];
        int n = SenseData.Write(buf, SenseCode.MiscompareDuringVerifyOperation, descriptorFormat: true, information: 0x1234);
        Assert.Equal(0x72, buf[0]);
        Assert.Equal(0x0E, buf[1]);
        Assert.Equal(0x1D, buf[2]);
        Assert.Equal(12, buf[7]);
        Assert.Equal(20, n);
        Assert.Equal(0x80, buf[10]);
        Assert.Equal(0x12, buf[18]);
        Assert.Equal(0x34, buf[19]);
        Assert.Equal(SenseCode.MiscompareDuringVerifyOperation, SenseData.Parse(buf));
    }
}
